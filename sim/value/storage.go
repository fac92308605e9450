package value

import (
	"errors"
	"math/rand/v2"
	"time"
)

// StorageConfig describes the cloud storage of one capsule hub.
type StorageConfig struct {
	// VisibleWithin bounds eventual consistency: a write shows up in
	// listings after a delay drawn uniformly from [0, VisibleWithin]
	// (default 1s).
	VisibleWithin time.Duration
	// ListLatency is the time one list query (one page) takes (default
	// 100ms). The pages of one listing are fetched one after the other.
	ListLatency time.Duration
	// PageSize is how many names one list query returns (default 1000, as
	// S3, GCS and Azure do).
	PageSize int
	// NameBytes is the size of one listed name in a page, for the bytes a
	// listing costs (default 100).
	NameBytes int
}

// DefaultStorageConfig returns the documented defaults.
func DefaultStorageConfig() StorageConfig {
	return StorageConfig{VisibleWithin: time.Second, ListLatency: 100 * time.Millisecond, PageSize: 1000, NameBytes: 100}
}

// WithDefaults fills zero fields with defaults.
func (c StorageConfig) WithDefaults() StorageConfig {
	d := DefaultStorageConfig()
	if c.VisibleWithin == 0 {
		c.VisibleWithin = d.VisibleWithin
	}
	if c.ListLatency == 0 {
		c.ListLatency = d.ListLatency
	}
	if c.PageSize == 0 {
		c.PageSize = d.PageSize
	}
	if c.NameBytes == 0 {
		c.NameBytes = d.NameBytes
	}
	return c
}

// Validate reports settings that cannot work.
func (c StorageConfig) Validate() error {
	if c.VisibleWithin < 0 || c.ListLatency <= 0 || c.PageSize <= 0 || c.NameBytes <= 0 {
		return errors.New("sim: storage: latency, page size and name size must be positive, visibility delay not negative")
	}
	return nil
}

// Storage models the cloud storage of one capsule hub: an object store
// whose listings are eventually consistent, paged and counted. Capsules are
// named by an index the caller assigns. It has no clock of its own: every
// call passes the virtual time.
type Storage struct {
	cfg     StorageConfig
	objects []object // in write order
	queries uint64
}

type object struct {
	capsule int
	visible time.Time
}

// Listing is what one listing of a hub returned.
type Listing struct {
	Capsules []int         // visible when the listing started, in write order
	Pages    int           // list queries it took
	Took     time.Duration // Pages × ListLatency
	Bytes    int           // names × NameBytes
}

// NewStorage returns an empty hub.
func NewStorage(cfg StorageConfig) (*Storage, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Storage{cfg: cfg}, nil
}

// Write stores a capsule at now. It becomes visible to listings after a
// delay drawn from rng; Write returns when.
func (s *Storage) Write(capsule int, now time.Time, rng *rand.Rand) time.Time {
	visible := now
	if s.cfg.VisibleWithin > 0 {
		visible = now.Add(time.Duration(rng.Int64N(int64(s.cfg.VisibleWithin) + 1)))
	}
	s.objects = append(s.objects, object{capsule: capsule, visible: visible})
	return visible
}

// List lists the hub as of now: every capsule visible at now, one query per
// PageSize names (at least one). The caller has the answer Took later.
func (s *Storage) List(now time.Time) Listing {
	var l Listing
	for _, o := range s.objects {
		if !o.visible.After(now) {
			l.Capsules = append(l.Capsules, o.capsule)
		}
	}
	l.Pages = max(1, (len(l.Capsules)+s.cfg.PageSize-1)/s.cfg.PageSize)
	l.Took = time.Duration(l.Pages) * s.cfg.ListLatency
	l.Bytes = len(l.Capsules) * s.cfg.NameBytes
	s.queries += uint64(l.Pages)
	return l
}

// Queries reports how many list queries the hub served.
func (s *Storage) Queries() uint64 { return s.queries }

// Len reports how many capsules were written.
func (s *Storage) Len() int { return len(s.objects) }
