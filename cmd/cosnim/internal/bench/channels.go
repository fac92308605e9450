package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// shardedHist lets many goroutines record latencies with little contention.
type shardedHist struct {
	shards [16]struct {
		mu sync.Mutex
		h  Hist
	}
}

func (s *shardedHist) record(i int, d time.Duration, n int) {
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	sh.h.Record(d, n)
	sh.mu.Unlock()
}

func (s *shardedHist) merged() *Hist {
	var h Hist
	for i := range s.shards {
		s.shards[i].mu.Lock()
		h.Merge(&s.shards[i].h)
		s.shards[i].mu.Unlock()
	}
	return &h
}

// member is one client of the channels scenario: it announces and receives.
type member struct {
	c    *wconn
	k    *roster.Keys
	s    *sealer
	sent int // entries announced; owned by its sender goroutine
	f    wire.Announce
	out  []byte
}

func runChannels(ctx context.Context, t Target, o Options) (*Result, error) {
	n := o.Channels * o.Sub
	keys := make([]*roster.Keys, o.Channels)
	for i := range keys {
		var err error
		if keys[i], err = channelKeys(i); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	ms := make([]*member, n)
	closeAll := func() {
		for _, m := range ms {
			if m != nil {
				m.c.close()
			}
		}
	}
	defer closeAll()
	var retryMu sync.Mutex
	var retries uint64
	var connected atomic.Uint64
	bar := startProgress(o.Progress, "connect", uint64(n), connected.Load)
	err := parallel(n, 64, func(i int) error {
		c, err := connectRetry(ctx, t, 8<<10, &retryMu, &retries)
		if err != nil {
			return err
		}
		k := keys[i%o.Channels]
		if _, err := c.join(k, 1); err != nil {
			c.close()
			return err
		}
		ms[i] = &member{c: c, k: k, s: newSealer(k, start, uint32(i), o.Size), f: wire.Announce{Handle: 1}}
		connected.Add(1)
		return nil
	})
	bar.stop()
	if err != nil {
		return nil, fmt.Errorf("bench: connecting: %w", err)
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()

	var e errs
	var hist shardedHist
	var delivered, published atomic.Uint64
	var rwg sync.WaitGroup
	for i, m := range ms {
		rwg.Go(func() { receiveAll(m.c, m.k, start, i, &hist, &delivered, &e) })
	}

	before, ok := t.Usage()
	runStart := time.Since(start)
	deadline := start.Add(runStart + o.Duration)
	senders := max(2, runtime.GOMAXPROCS(0))
	perClient := float64(o.Rate) / float64(n) // entries per second per client
	fan := uint64(o.Sub - 1)
	window := uint64(o.Window) * uint64(o.Channels)
	bar = startProgress(o.Progress, "channels", uint64(o.Duration/time.Millisecond), func() uint64 {
		return uint64(min(time.Since(start)-runStart, o.Duration) / time.Millisecond)
	})
	var swg sync.WaitGroup
	for g := range senders {
		swg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				el := time.Since(start) - runStart
				for i := g; i < n; i += senders {
					m := ms[i]
					due := o.Batch
					if o.Rate > 0 {
						// Phase-shifted so that clients do not all send
						// on the same tick.
						due = int(el.Seconds()*perClient+float64(i)/float64(n)) - m.sent
						due = min(due, o.Batch)
					} else {
						for published.Load()*fan >= delivered.Load()+window && time.Now().Before(deadline) {
							runtime.Gosched()
						}
					}
					if due <= 0 {
						continue
					}
					if err := m.announce(due); err != nil {
						e.add(err)
						continue
					}
					published.Add(uint64(due))
				}
				if o.Rate > 0 {
					select {
					case <-tick.C:
					case <-ctx.Done():
					}
				}
			}
		})
	}
	swg.Wait()
	measured := time.Since(start) - runStart
	// Let what is in flight arrive.
	want := published.Load() * fan
	for wait := time.Now().Add(2 * time.Second); delivered.Load() < want && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	bar.stop()
	after, _ := t.Usage()
	closeAll()
	rwg.Wait()

	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Sub: o.Sub, Channels: o.Channels, Conns: n,
		Size: o.Size, Batch: o.Batch, TargetRate: o.Rate, Published: published.Load(), Delivered: delivered.Load(), Expected: want, Retries: retries}
	fillRates(r, measured, o.Size)
	r.setLatency(hist.merged())
	r.setUsage(t, before, after, ok, measured)
	e.fill(r)
	return r, nil
}

// announce sends n new entries in one Announce frame.
func (m *member) announce(n int) error {
	m.f.Entries = m.f.Entries[:0]
	for range n {
		sealed, err := m.s.seal()
		if err != nil {
			return err
		}
		m.f.Entries = append(m.f.Entries, sealed)
	}
	m.f.Seq++
	m.out = wire.Append(m.out[:0], &m.f)
	m.sent += n
	_, err := m.c.nc.Write(m.out)
	return err
}

// receiveAll counts Deliver entries and records their latency until the
// connection closes.
func receiveAll(c *wconn, k *roster.Keys, start time.Time, shard int, h *shardedHist, delivered *atomic.Uint64, e *errs) {
	var f wire.Deliver
	var pong []byte
	for {
		t, p, err := c.next()
		if err != nil {
			return
		}
		switch t {
		case wire.TypeDeliver:
			if f.DecodePayload(p) != nil || len(f.Entries) == 0 {
				continue
			}
			now := time.Since(start)
			if stamp, err := stampOf(k, f.Entries[0]); err == nil {
				h.record(shard, now-stamp, len(f.Entries))
			} else {
				e.add(err)
			}
			delivered.Add(uint64(len(f.Entries)))
		case wire.TypePing:
			var pf wire.Ping
			if pf.DecodePayload(p) == nil {
				pong = wire.Append(pong[:0], &wire.Pong{Data: pf.Data})
				c.nc.Write(pong)
			}
		case wire.TypeError:
			var ef wire.Error
			ef.DecodePayload(p)
			e.add(&errRelay{ef})
		}
	}
}
