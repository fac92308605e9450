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

// subscriber is the receiving half of a fanout run.
type subscriber struct {
	c     *wconn
	got   atomic.Uint64
	last  atomic.Int64 // time of the last entry, ns since start
	hist  Hist
	pongs []byte
}

// receive reads Deliver frames until want entries arrived, the connection
// fails or ctx ends. Latency is taken from the first entry of each frame.
func (s *subscriber) receive(k *roster.Keys, start time.Time, want uint64, e *errs) {
	var f wire.Deliver
	for s.got.Load() < want {
		t, p, err := s.c.next()
		if err != nil {
			e.add(fmt.Errorf("subscriber: %w", err))
			return
		}
		switch t {
		case wire.TypeDeliver:
			if err := f.DecodePayload(p); err != nil {
				e.add(err)
				return
			}
			if len(f.Entries) == 0 {
				continue
			}
			now := time.Since(start)
			if stamp, err := stampOf(k, f.Entries[0]); err != nil {
				e.add(err)
			} else {
				s.hist.Record(now-stamp, len(f.Entries))
			}
			s.got.Add(uint64(len(f.Entries)))
			s.last.Store(int64(now))
		case wire.TypePing:
			var pf wire.Ping
			if pf.DecodePayload(p) == nil {
				s.pongs = wire.Append(s.pongs[:0], &wire.Pong{Data: pf.Data})
				s.c.nc.Write(s.pongs)
			}
		case wire.TypeError:
			var ef wire.Error
			ef.DecodePayload(p)
			e.add(&errRelay{ef})
			if ef.Flags&wire.ErrorFatal != 0 {
				return
			}
		}
	}
}

// drainAcks reads and discards what the relay sends a publisher (Acks)
// until the connection closes.
func drainAcks(c *wconn, e *errs) {
	for {
		t, p, err := c.next()
		if err != nil {
			return
		}
		if t == wire.TypeError {
			var ef wire.Error
			ef.DecodePayload(p)
			e.add(&errRelay{ef})
		}
	}
}

// minGot returns the fewest entries any subscriber has received.
func minGot(subs []*subscriber) uint64 {
	m := ^uint64(0)
	for _, s := range subs {
		m = min(m, s.got.Load())
	}
	return m
}

func runFanout(ctx context.Context, t Target, o Options) (*Result, error) {
	k, err := channelKeys(0)
	if err != nil {
		return nil, err
	}
	var e errs
	subs := make([]*subscriber, o.Sub)
	pubs := make([]*wconn, o.Pub)
	closeAll := func() {
		for _, s := range subs {
			if s != nil {
				s.c.close()
			}
		}
		for _, p := range pubs {
			if p != nil {
				p.close()
			}
		}
	}
	defer closeAll()
	var retryMu sync.Mutex
	var retries uint64
	err = parallel(o.Sub+o.Pub, 32, func(i int) error {
		c, err := connectRetry(ctx, t, 64<<10, &retryMu, &retries)
		if err != nil {
			return err
		}
		if _, err := c.join(k, 1); err != nil {
			c.close()
			return err
		}
		if i < o.Sub {
			subs[i] = &subscriber{c: c}
		} else {
			pubs[i-o.Sub] = c
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: connecting: %w", err)
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()

	total := uint64(o.Msgs) * uint64(o.Pub)
	want := total
	var published atomic.Uint64
	before, ok := t.Usage()
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() { s.receive(k, start, want, &e) })
	}
	var pwg sync.WaitGroup
	for i, c := range pubs {
		go drainAcks(c, &e)
		pwg.Go(func() {
			if err := publish(c, newSealer(k, start, uint32(i), o.Size), o, &published, subs); err != nil {
				e.add(fmt.Errorf("publisher: %w", err))
			}
		})
	}
	bar := startProgress(o.Progress, "fanout", want*uint64(o.Sub), func() uint64 {
		var n uint64
		for _, s := range subs {
			n += s.got.Load()
		}
		return n
	})
	pwg.Wait()
	wg.Wait()
	bar.stop()
	after, _ := t.Usage()

	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Pub: o.Pub, Sub: o.Sub, Channels: 1,
		Conns: o.Pub + o.Sub, Size: o.Size, Batch: o.Batch, Published: published.Load(), Expected: want * uint64(o.Sub)}
	var h Hist
	var end time.Duration
	r.PerSubMin = -1
	for _, s := range subs {
		h.Merge(&s.hist)
		got := s.got.Load()
		r.Delivered += got
		last := time.Duration(s.last.Load())
		end = max(end, last)
		rate := 0.0
		if last > 0 {
			rate = float64(got) / last.Seconds()
		}
		if r.PerSubMin < 0 || rate < r.PerSubMin {
			r.PerSubMin = rate
		}
		r.PerSubMax = max(r.PerSubMax, rate)
		r.PerSubAvg += rate / float64(len(subs))
	}
	r.Retries = retries
	fillRates(r, end, o.Size)
	r.setLatency(&h)
	r.setUsage(t, before, after, ok, end)
	e.fill(r)
	if r.Delivered < r.Expected && r.Errors == 0 {
		e.add(fmt.Errorf("delivered %d of %d entries", r.Delivered, r.Expected))
		e.fill(r)
	}
	return r, nil
}

// fillRates derives per-second figures over elapsed.
func fillRates(r *Result, elapsed time.Duration, size int) {
	r.Seconds = elapsed.Seconds()
	if elapsed <= 0 {
		return
	}
	r.DeliveredPerSec = float64(r.Delivered) / r.Seconds
	r.PublishedPerSec = float64(r.Published) / r.Seconds
	r.BytesPerSec = r.DeliveredPerSec * float64(size)
}

// publish sends o.Msgs entries in Announce frames of o.Batch, never more
// than o.Window entries (of all publishers) ahead of the slowest subscriber.
func publish(c *wconn, s *sealer, o Options, published *atomic.Uint64, subs []*subscriber) error {
	f := wire.Announce{Handle: 1, Entries: make([][]byte, 0, o.Batch)}
	var out []byte
	window := uint64(o.Window)
	for sent := 0; sent < o.Msgs; {
		for spins := 0; published.Load() >= minGot(subs)+window; spins++ {
			if spins < 50 {
				runtime.Gosched()
			} else {
				time.Sleep(50 * time.Microsecond)
			}
		}
		n := min(o.Batch, o.Msgs-sent)
		f.Entries = f.Entries[:0]
		for range n {
			sealed, err := s.seal()
			if err != nil {
				return err
			}
			f.Entries = append(f.Entries, sealed)
		}
		f.Seq++
		out = wire.Append(out[:0], &f)
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
		sent += n
		published.Add(uint64(n))
	}
	return nil
}
