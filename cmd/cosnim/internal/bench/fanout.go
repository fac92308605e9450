package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// fanout is one run of the fanout scenario.
type fanout struct {
	ctx       context.Context
	o         Options
	tls       bool
	limits    []wire.Limit // what the relay advertised
	halt      func()       // closes every connection of the run
	aborted   atomic.Bool  // the run cannot complete; errors after it are its echoes
	k         *roster.Keys
	subs      []*subscriber
	pubs      []*conn
	hist      shardedHist
	e         errs
	published atomic.Uint64
	start     time.Time
}

// subscriber is the receiving half of a fanout run.
type subscriber struct {
	c     *conn
	shard int
	got   atomic.Uint64
	last  atomic.Int64 // time of the last entry, ns since start
	smp   sampler      // receiver goroutine only
}

func runFanout(ctx context.Context, t Target, o Options) (*Result, error) {
	k, err := channelKeys(0)
	if err != nil {
		return nil, err
	}
	var retries atomic.Uint64
	cs, err := connectAll(ctx, t, o, dialPlan{
		n: o.Sub + o.Pub, width: 32, readBuf: 64 << 10, label: "connect",
		key: func(int) *roster.Keys { return k },
	}, &retries)
	if err != nil {
		return nil, err
	}
	defer closeConns(cs)
	stop := context.AfterFunc(ctx, func() { closeConns(cs) })
	defer stop()

	o = o.fitWindow(cs[0].limits)
	f := &fanout{ctx: ctx, o: o, tls: t.ClientTLS() != nil, k: k, pubs: cs[o.Sub:],
		limits: cs[0].limits, halt: func() { closeConns(cs) }}
	for i, c := range cs[:o.Sub] {
		f.subs = append(f.subs, &subscriber{c: c, shard: i})
	}
	before, ok := t.Usage()
	f.start = time.Now()
	f.run()
	r := f.finish(t, before, ok, "entries")
	r.Retries = retries.Load()
	return r, nil
}

// finish sums the run up against the server's usage since before, and
// reports an incomplete delivery of what (entries, messages) as an error.
func (f *fanout) finish(t Target, before Usage, ok bool, what string) *Result {
	after, _ := t.Usage()
	r, end := f.result()
	r.setUsage(t, before, after, ok, end)
	f.e.fill(r)
	if r.Delivered < r.Expected && r.Errors == 0 {
		f.e.add(fmt.Errorf("delivered %d of %d %s", r.Delivered, r.Expected, what))
		f.e.fill(r)
	}
	r.cause, r.limits = f.e.err(), f.limits
	return r
}

// abort gives up a run that cannot complete: err is why. It closes every
// connection, so that nobody waits for entries that will not come; the
// errors that follow are its echoes and are not counted.
func (f *fanout) abort(err error) {
	if f.aborted.CompareAndSwap(false, true) {
		f.e.add(err)
		if f.halt != nil {
			f.halt()
		}
	}
}

// fail records err, aborting the run if it is one the run cannot survive:
// a closed connection, or entries the relay dropped (Resync).
func (f *fanout) fail(err error) {
	if f.aborted.Load() {
		return
	}
	var re *wirepeer.RemoteError
	if fatal(err) || errors.As(err, &re) && re.Frame.Code == wire.CodeResync {
		f.abort(err)
		return
	}
	f.e.add(err)
}

// run publishes and waits until every subscriber has every entry, or has
// failed.
func (f *fanout) run() {
	want := uint64(f.o.Msgs) * uint64(f.o.Pub)
	var wg sync.WaitGroup
	for _, s := range f.subs {
		wg.Go(func() { s.receive(f, want) })
	}
	var pwg sync.WaitGroup
	for i, c := range f.pubs {
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			drainAcks(c, f)
		}()
		pwg.Go(func() {
			if err := f.publish(c, newSealer(f.k, f.start, uint32(i), f.o.Size)); err != nil {
				// The relay's Error frame, if it sent one, says why better
				// than a reset: let the reader see it first.
				select {
				case <-drained:
				case <-time.After(time.Second):
				}
				f.fail(fmt.Errorf("publisher: %w", err))
			}
		})
	}
	f.await(want, &pwg, &wg)
}

// await shows progress until the publishers (pwg) and the subscribers
// (wg) are done.
func (f *fanout) await(want uint64, pwg, wg *sync.WaitGroup) {
	delivered := func() uint64 {
		var n uint64
		for _, s := range f.subs {
			n += s.got.Load()
		}
		return n
	}
	bar := startProgress(f.o, "fanout", want*uint64(f.o.Sub), delivered)
	done := make(chan struct{})
	go func() {
		pwg.Wait()
		wg.Wait()
		close(done)
	}()
	f.watch(done, func() uint64 { return f.published.Load() + delivered() })
	bar.stop()
}

// watch waits for done, aborting the run if progress (a count of what
// was sent and received) stands still for stallTimeout.
func (f *fanout) watch(done <-chan struct{}, progress func() uint64) {
	tick := time.NewTicker(stallTimeout / 10)
	defer tick.Stop()
	last, since := progress(), time.Now()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if p := progress(); p != last {
			last, since = p, time.Now()
		} else if time.Since(since) >= stallTimeout {
			f.abort(fmt.Errorf("%w: nothing published or delivered for %v", errStalled, stallTimeout))
		}
	}
}

// result sums up what the subscribers received, and when the last entry
// arrived.
func (f *fanout) result() (*Result, time.Duration) {
	o := f.o
	want := uint64(o.Msgs) * uint64(o.Pub) * uint64(o.Sub)
	r := &Result{Scenario: o.Scenario, TLS: f.tls, Pub: o.Pub, Sub: o.Sub, Channels: 1,
		Conns: o.Pub + o.Sub, Size: o.Size, Batch: o.Batch, Published: f.published.Load(), Expected: want}
	var end time.Duration
	r.PerSubMin = -1
	for _, s := range f.subs {
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
		r.PerSubAvg += rate / float64(len(f.subs))
	}
	fillRates(r, end, o.Size)
	r.setLatency(f.hist.merged())
	return r, end
}

// receive reads Deliver frames until want entries arrived, the connection
// fails or the run is aborted. Latency is taken from the first entry of
// each frame.
func (s *subscriber) receive(run *fanout, want uint64) {
	defer s.smp.flush(&run.hist, s.shard)
	var f wire.Deliver
	for s.got.Load() < want {
		t, p, err := s.c.Next()
		if err != nil {
			run.fail(fmt.Errorf("subscriber: %w", err))
			return
		}
		switch t {
		case wire.TypeDeliver:
			if err := f.DecodePayload(p); err != nil {
				run.fail(err)
				return
			}
			s.deliver(run.k, run.start, &f, &run.hist, &run.e)
		case wire.TypePing:
			s.c.pong(p)
		case wire.TypeError:
			if err := relayError(p); !notice(err) {
				run.fail(err)
				if fatal(err) {
					return
				}
			}
		}
	}
}

// deliver counts a Deliver frame's entries and records their latency.
func (s *subscriber) deliver(k *roster.Keys, start time.Time, f *wire.Deliver, h *shardedHist, e *errs) {
	if len(f.Entries) == 0 {
		return
	}
	now := time.Since(start)
	if w, ok := s.smp.take(now, len(f.Entries)); ok {
		if stamp, err := stampOf(k, f.Entries[0]); err != nil {
			e.add(err)
		} else {
			s.smp.record(h, s.shard, now-stamp, w)
		}
	}
	s.got.Add(uint64(len(f.Entries)))
	s.last.Store(int64(now))
}

// drainAcks reads and discards what the relay sends a publisher (Acks)
// until the connection closes; an Error frame there (the relay closing
// it, rate limited) is often the first news that the run failed.
func drainAcks(c *conn, f *fanout) {
	for {
		t, p, err := c.Next()
		if err != nil {
			return
		}
		switch t {
		case wire.TypeError:
			if err := relayError(p); !notice(err) {
				f.fail(fmt.Errorf("publisher: %w", err))
			}
		case wire.TypePing:
			c.pong(p)
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

// publish sends o.Msgs entries in Announce frames of o.Batch.
func (f *fanout) publish(c *conn, s *sealer) error {
	a := wire.Announce{Handle: 1, Entries: make([][]byte, 0, f.o.Batch)}
	frames := 0 // in what the next write sends
	write := func(b []byte) error {
		if err := c.pace.wait(f.ctx, frames, len(b)); err != nil {
			return err
		}
		frames = 0
		return c.Write(b)
	}
	return f.publishWith(write, func(out []byte, due int) ([]byte, int, error) {
		n := min(f.o.Batch, due)
		if err := s.fill(&a, n); err != nil {
			return out, 0, err
		}
		frames++
		return wire.Append(out, &a), n, nil
	})
}

// publishWith sends o.Msgs entries, next appending up to due of them to
// out and saying how many. At o.Rate (entries per second) it sends what is
// due on each millisecond tick; otherwise it runs as fast as the window
// allows: never more than o.Window entries (of all publishers) ahead of
// the slowest subscriber. What next appends leaves in one write per tick,
// per 32 KiB or before a wait, as a NATS client's buffered publishes do.
func (f *fanout) publishWith(write func([]byte) error, next func(out []byte, due int) ([]byte, int, error)) error {
	var out []byte
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		err := write(out)
		out = out[:0]
		return err
	}
	p := newPacer(float64(f.o.Rate) / float64(f.o.Pub))
	defer p.stop()
	window := uint64(f.o.Window)
	for sent := 0; sent < f.o.Msgs; {
		if f.aborted.Load() {
			return nil
		}
		due := f.o.Msgs - sent
		if p != nil {
			due = min(due, p.due(sent))
		}
		if due <= 0 || (p == nil && f.published.Load() >= minGot(f.subs)+window) {
			if err := flush(); err != nil {
				return err
			}
			if p != nil {
				p.wait()
				continue
			}
			for spins := 0; f.published.Load() >= minGot(f.subs)+window && !f.aborted.Load(); spins++ {
				if spins < 50 {
					runtime.Gosched()
				} else {
					time.Sleep(50 * time.Microsecond)
				}
			}
			continue
		}
		var n int
		var err error
		if out, n, err = next(out, due); err != nil {
			return err
		}
		sent += n
		f.published.Add(uint64(n))
		if len(out) >= 32<<10 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// pacer spreads a rate over millisecond ticks.
type pacer struct {
	rate  float64 // per second
	start time.Time
	tick  *time.Ticker
}

// newPacer returns nil for rate 0 (as fast as possible).
func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate, start: time.Now(), tick: time.NewTicker(time.Millisecond)}
}

func (p *pacer) stop() {
	if p != nil {
		p.tick.Stop()
	}
}

// due is how many more than sent are due by now.
func (p *pacer) due(sent int) int {
	return int(time.Since(p.start).Seconds()*p.rate) + 1 - sent
}

func (p *pacer) wait() { <-p.tick.C }

// sampleEvery spaces the entries a receiver opens for their timestamp:
// at full speed opening every one would cost the bench more than the
// relay spends on it. Below 1/sampleEvery frames per second per receiver,
// which covers every fixed-rate run, each frame is sampled.
const sampleEvery = 20 * time.Microsecond

// sampler thins latency samples; each sample stands for the entries
// received since the previous one.
type sampler struct {
	last    time.Duration // when the last sample was taken
	lat     time.Duration // its latency
	pending int
}

// take counts n entries arrived at now and reports whether to sample
// them, and with what weight.
func (s *sampler) take(now time.Duration, n int) (weight int, ok bool) {
	s.pending += n
	if s.last != 0 && now-s.last < sampleEvery {
		return 0, false
	}
	s.last, weight, s.pending = now, s.pending, 0
	return weight, true
}

// record adds a sample of latency d and weight w to h.
func (s *sampler) record(h *shardedHist, shard int, d time.Duration, w int) {
	s.lat = d
	h.record(shard, d, w)
}

// flush counts the entries received since the last sample with its
// latency, so that the histogram holds every entry.
func (s *sampler) flush(h *shardedHist, shard int) {
	if s.pending > 0 && s.last != 0 {
		h.record(shard, s.lat, s.pending)
	}
	s.pending = 0
}
