package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The NATS runs mirror fanout and channels: a message is an entry, Size
// bytes starting with its publish time (ns since the run's start, one
// process), Window and Rate mean the same, publishes leave in one write
// per tick, per 32 KiB or before a wait, and receivers sample latency the
// same way, except that nats.go, not the bench, decides when its buffered
// publishes leave. NATS messages carry one entry each, whatever Batch says.

// runNATS runs o's scenario against a NATS server.
func runNATS(ctx context.Context, t *natsTarget, o Options) (*Result, error) {
	switch o.Scenario {
	case ScenarioFanout:
		return runNATSFanout(ctx, t, o)
	case ScenarioChannels:
		return runNATSChannels(ctx, t, o)
	}
	return nil, errNATSScenario
}

// connectNATS opens n clients, subscribing client i to subject(i) when
// subject returns one.
func connectNATS(ctx context.Context, t *natsTarget, o Options, n int, subject func(int) string) ([]*natsConn, error) {
	cs := make([]*natsConn, n)
	var joined atomic.Uint64
	bar := startProgress(o, "connect", uint64(n), joined.Load)
	err := parallel(n, 32, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := dialNATS(t, 15*time.Second)
		if err != nil {
			return err
		}
		cs[i] = c
		if s := subject(i); s != "" {
			if err := c.subscribe(s); err != nil {
				return err
			}
		}
		joined.Add(1)
		return nil
	})
	bar.stop()
	if err != nil {
		closeNATS(cs)
		return nil, fmt.Errorf("bench: connecting to NATS: %w", err)
	}
	return cs, nil
}

func closeNATS(cs []*natsConn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// stampPayload writes a message: the time since start, then padding.
func stampPayload(p []byte, start time.Time) {
	binary.BigEndian.PutUint64(p, uint64(time.Since(start)))
}

func runNATSFanout(ctx context.Context, t *natsTarget, o Options) (*Result, error) {
	const subject = "bench.fanout"
	cs, err := connectNATS(ctx, t, o, o.Sub+o.Pub, func(i int) string {
		if i < o.Sub {
			return subject
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	defer closeNATS(cs)
	stop := context.AfterFunc(ctx, func() { closeNATS(cs) })
	defer stop()

	f := &fanout{ctx: ctx, o: o, tls: t.tls != nil, halt: func() { closeNATS(cs) }}
	for i := range o.Sub {
		f.subs = append(f.subs, &subscriber{shard: i})
	}
	before, ok := t.Usage()
	f.start = time.Now()
	want := uint64(o.Msgs) * uint64(o.Pub)
	var wg sync.WaitGroup
	for i, s := range f.subs {
		wg.Go(func() {
			defer s.smp.flush(&f.hist, s.shard)
			for s.got.Load() < want {
				p, err := cs[i].next()
				if err != nil {
					f.fail(fmt.Errorf("subscriber: %w", err))
					return
				}
				now := time.Since(f.start)
				if w, ok := s.smp.take(now, 1); ok && len(p) >= 8 {
					s.smp.record(&f.hist, s.shard, now-time.Duration(binary.BigEndian.Uint64(p)), w)
				}
				s.got.Add(1)
				s.last.Store(int64(now))
			}
		})
	}
	var pwg sync.WaitGroup
	for _, c := range cs[o.Sub:] {
		pwg.Go(func() {
			if err := f.publishNATS(c, subject); err != nil {
				f.fail(fmt.Errorf("publisher: %w", err))
			}
		})
	}
	f.await(want, &pwg, &wg)
	r := f.finish(t, before, ok, "messages")
	r.Batch = 1
	return r, nil
}

// publishNATS is fanout.publish for NATS: one message at a time, each
// stamped with its publish time and handed to nats.go, which buffers it;
// the bench writes nothing itself.
func (f *fanout) publishNATS(c *natsConn, subject string) error {
	payload := make([]byte, f.o.Size)
	noWrite := func([]byte) error { return nil }
	return f.publishWith(noWrite, func(out []byte, _ int) ([]byte, int, error) {
		stampPayload(payload, f.start)
		return out, 1, c.publish(subject, payload)
	})
}

func runNATSChannels(ctx context.Context, t *natsTarget, o Options) (*Result, error) {
	n := o.Channels * o.Sub
	subject := func(i int) string { return fmt.Sprintf("bench.ch.%d", i%o.Channels) }
	cs, err := connectNATS(ctx, t, o, n, subject)
	if err != nil {
		return nil, err
	}
	defer closeNATS(cs)
	stop := context.AfterFunc(ctx, func() { closeNATS(cs) })
	defer stop()

	cr := &channelsRun{o: o, start: time.Now()}
	var rwg sync.WaitGroup
	for i, c := range cs {
		rwg.Go(func() {
			var smp sampler
			defer smp.flush(&cr.hist, i)
			for {
				p, err := c.next()
				if err != nil {
					return
				}
				now := time.Since(cr.start)
				if w, ok := smp.take(now, 1); ok && len(p) >= 8 {
					smp.record(&cr.hist, i, now-time.Duration(binary.BigEndian.Uint64(p)), w)
				}
				cr.delivered.Add(1)
			}
		})
	}
	before, ok := t.Usage()
	cr.runStart = time.Since(cr.start)
	cr.deadline = cr.start.Add(cr.runStart + o.Duration)
	senders := max(2, runtime.GOMAXPROCS(0))
	var swg sync.WaitGroup
	for g := range senders {
		swg.Go(func() { cr.senderNATS(ctx, cs, subject, g, senders) })
	}
	swg.Wait()
	measured := cr.elapsed()
	want := cr.published.Load() * uint64(o.Sub-1)
	for wait := time.Now().Add(2 * time.Second); cr.delivered.Load() < want && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	after, _ := t.Usage()
	closeNATS(cs)
	rwg.Wait()

	r := &Result{Scenario: o.Scenario, TLS: t.tls != nil, Sub: o.Sub, Channels: o.Channels, Conns: n,
		Size: o.Size, Batch: 1, TargetRate: o.Rate, Published: cr.published.Load(), Delivered: cr.delivered.Load(), Expected: want}
	fillRates(r, measured, o.Size)
	r.setLatency(cr.hist.merged())
	r.setUsage(t, before, after, ok, measured)
	cr.e.fill(r)
	return r, nil
}

// senderNATS is channelsRun.sender for NATS: clients g, g+step, ... publish
// what they owe on each millisecond tick through nats.go.
func (cr *channelsRun) senderNATS(ctx context.Context, cs []*natsConn, subject func(int) string, g, step int) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := make([]int, len(cs))
	payload := make([]byte, cr.o.Size)
	n := len(cs)
	for time.Now().Before(cr.deadline) && ctx.Err() == nil {
		el := cr.elapsed()
		for i := g; i < n; i += step {
			due := cr.o.Batch
			if cr.o.Rate > 0 {
				perClient := float64(cr.o.Rate) / float64(n)
				due = min(int(el.Seconds()*perClient+float64(i)/float64(n))-sent[i], cr.o.Batch)
			} else {
				cr.awaitWindow()
			}
			if due <= 0 {
				continue
			}
			sent[i] += due
			s := subject(i)
			for range due {
				stampPayload(payload, cr.start)
				if err := cs[i].publish(s, payload); err != nil {
					cr.e.add(err)
					break
				}
				cr.published.Add(1)
			}
		}
		if cr.o.Rate > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}
}
