package bench

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// member is one client of the channels scenario: it announces and receives.
type member struct {
	c    *conn
	k    *roster.Keys
	s    *sealer
	sent int // entries announced; owned by its sender goroutine
	f    wire.Announce
}

// channelsRun is one run of the channels scenario.
type channelsRun struct {
	o         Options
	ms        []*member
	start     time.Time
	runStart  time.Duration // when sending began, since start
	deadline  time.Time
	hist      shardedHist
	e         errs
	delivered atomic.Uint64
	published atomic.Uint64
}

func runChannels(ctx context.Context, t Target, o Options) (*Result, error) {
	keys, err := channelKeyList(o.Channels)
	if err != nil {
		return nil, err
	}
	n := o.Channels * o.Sub
	var retries atomic.Uint64
	cs, err := connectAll(ctx, t, o, dialPlan{
		n: n, width: 64, readBuf: 8 << 10, label: "connect",
		key: func(i int) *roster.Keys { return keys[i%o.Channels] },
	}, &retries)
	if err != nil {
		return nil, err
	}
	defer closeConns(cs)
	stop := context.AfterFunc(ctx, func() { closeConns(cs) })
	defer stop()

	o = o.fitWindow(cs[0].limits)
	cr := &channelsRun{o: o, start: time.Now()}
	for i, c := range cs {
		k := keys[i%o.Channels]
		cr.ms = append(cr.ms, &member{c: c, k: k, s: newSealer(k, cr.start, uint32(i), o.Size), f: wire.Announce{Handle: 1}})
	}
	var rwg sync.WaitGroup
	for i, m := range cr.ms {
		rwg.Go(func() { cr.receive(m, i) })
	}
	before, ok := t.Usage()
	measured, want := cr.run(ctx)
	after, _ := t.Usage()
	closeConns(cs)
	rwg.Wait()

	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Sub: o.Sub, Channels: o.Channels, Conns: n,
		Size: o.Size, Batch: o.Batch, TargetRate: o.Rate, Published: cr.published.Load(), Delivered: cr.delivered.Load(), Expected: want, Retries: retries.Load()}
	fillRates(r, measured, o.Size)
	r.setLatency(cr.hist.merged())
	r.setUsage(t, before, after, ok, measured)
	cr.e.fill(r)
	r.cause, r.limits = cr.e.err(), cs[0].limits
	return r, nil
}

// run sends for o.Duration, then lets what is in flight arrive. It returns
// how long sending took and how many deliveries are due.
func (cr *channelsRun) run(ctx context.Context) (measured time.Duration, want uint64) {
	cr.runStart = time.Since(cr.start)
	cr.deadline = cr.start.Add(cr.runStart + cr.o.Duration)
	bar := startProgress(cr.o, "channels", uint64(cr.o.Duration/time.Millisecond), func() uint64 {
		return uint64(min(cr.elapsed(), cr.o.Duration) / time.Millisecond)
	})
	defer bar.stop()
	senders := max(2, runtime.GOMAXPROCS(0))
	var swg sync.WaitGroup
	for g := range senders {
		swg.Go(func() { cr.sender(ctx, g, senders) })
	}
	swg.Wait()
	measured = cr.elapsed()
	want = cr.published.Load() * uint64(cr.o.Sub-1)
	for wait := time.Now().Add(2 * time.Second); cr.delivered.Load() < want && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	return measured, want
}

// elapsed is the time since sending began.
func (cr *channelsRun) elapsed() time.Duration { return time.Since(cr.start) - cr.runStart }

// sender announces for members g, g+step, ... until the deadline: on a
// millisecond tick at o.Rate, else as fast as the window allows.
func (cr *channelsRun) sender(ctx context.Context, g, step int) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(cr.deadline) && ctx.Err() == nil {
		el := cr.elapsed()
		for i := g; i < len(cr.ms); i += step {
			cr.announce(i, el)
		}
		if cr.o.Rate > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
	}
}

// announce sends what member i owes at el into the run.
func (cr *channelsRun) announce(i int, el time.Duration) {
	m := cr.ms[i]
	due := cr.o.Batch
	if cr.o.Rate > 0 {
		// Phase-shifted so that clients do not all send on the same tick.
		n := len(cr.ms)
		perClient := float64(cr.o.Rate) / float64(n) // entries per second
		due = min(int(el.Seconds()*perClient+float64(i)/float64(n))-m.sent, cr.o.Batch)
	} else {
		cr.awaitWindow()
	}
	if due <= 0 || !m.c.pace.allow(wire.EntriesFrameSize(due, due*cr.o.Size)) {
		return // over the relay's rates: on a later round
	}
	if err := m.s.fill(&m.f, due); err != nil {
		cr.e.add(err)
		return
	}
	m.sent += due
	if err := m.c.Send(&m.f); err != nil {
		cr.e.add(err)
		return
	}
	cr.published.Add(uint64(due))
}

// awaitWindow waits until no more than o.Window entries per channel are
// on their way.
func (cr *channelsRun) awaitWindow() {
	fan := uint64(cr.o.Sub - 1)
	window := uint64(cr.o.Window) * uint64(cr.o.Channels)
	for cr.published.Load()*fan >= cr.delivered.Load()+window && time.Now().Before(cr.deadline) {
		runtime.Gosched()
	}
}

// receive counts the Deliver entries of member i and records their latency
// until the connection closes.
func (cr *channelsRun) receive(m *member, i int) {
	var f wire.Deliver
	var smp sampler
	defer smp.flush(&cr.hist, i)
	for {
		t, p, err := m.c.Next()
		if err != nil {
			return
		}
		switch t {
		case wire.TypeDeliver:
			if f.DecodePayload(p) != nil || len(f.Entries) == 0 {
				continue
			}
			now := time.Since(cr.start)
			if w, ok := smp.take(now, len(f.Entries)); !ok {
			} else if stamp, err := stampOf(m.k, f.Entries[0]); err == nil {
				smp.record(&cr.hist, i, now-stamp, w)
			} else {
				cr.e.add(err)
			}
			cr.delivered.Add(uint64(len(f.Entries)))
		case wire.TypePing:
			m.c.pong(p)
		case wire.TypeError:
			cr.e.add(relayError(p))
		}
	}
}
