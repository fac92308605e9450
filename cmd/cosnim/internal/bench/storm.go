package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
)

// storm is one run of the reconnect storm: every client connects, joins
// and announces; the relay restarts; every client reconnects and resyncs.
type storm struct {
	o       Options
	t       Target
	start   time.Time
	clients []*stormClient
	sem     chan struct{} // bounds connections being opened
	wg      sync.WaitGroup
	e       errs
	retries atomic.Uint64

	ready, resynced, resumed atomic.Uint64
	restarted                atomic.Bool
	restartAt                atomic.Int64 // ns since start
	doneAt                   []int64      // per client, ns since start
	allReady, allSynced      chan struct{}

	liveMu sync.Mutex // guards live
	live   map[*conn]struct{}
}

func runStorm(ctx context.Context, t Target, o Options) (*Result, error) {
	s, err := newStorm(t, o)
	if err != nil {
		return nil, err
	}
	defer func() { s.closeAll(); s.wg.Wait() }()
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()
	for i := range s.clients {
		s.wg.Go(func() { s.runClient(ctx, i) })
	}
	if err := s.wait(ctx, "connect", s.allReady, &s.ready); err != nil {
		return nil, fmt.Errorf("bench: storm: %d of %d clients connected: %w (first error: %v)", s.ready.Load(), o.Idle, err, s.e.first.Load())
	}
	before, ok := t.Usage()
	s.restarted.Store(true)
	s.restartAt.Store(int64(time.Since(s.start)))
	if err := t.Restart(ctx); err != nil {
		return nil, err
	}
	s.wait(ctx, "resync", s.allSynced, &s.resynced)
	after, _ := t.Usage()
	return s.result(before, after, ok), nil
}

// newStorm makes the clients, each holding o.Msgs entries of its channel.
func newStorm(t Target, o Options) (*storm, error) {
	keys, err := channelKeyList(o.Channels)
	if err != nil {
		return nil, err
	}
	s := &storm{o: o, t: t, start: time.Now(), sem: make(chan struct{}, 64),
		doneAt: make([]int64, o.Idle), allReady: make(chan struct{}), allSynced: make(chan struct{}),
		live: make(map[*conn]struct{}, o.Idle)}
	for i := range o.Idle {
		sc := &stormClient{k: keys[i%o.Channels]}
		seal := newSealer(sc.k, s.start, uint32(i), o.Size)
		for range o.Msgs {
			sealed, err := seal.seal()
			if err != nil {
				return nil, err
			}
			sc.set.Add(roster.NewEntry(sealed))
		}
		s.clients = append(s.clients, sc)
	}
	return s, nil
}

// wait draws progress until done is closed or ctx ends.
func (s *storm) wait(ctx context.Context, label string, done chan struct{}, n *atomic.Uint64) error {
	bar := startProgress(s.o, label, uint64(s.o.Idle), n.Load)
	defer bar.stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// count adds one to n and closes all once every client is counted.
func (s *storm) count(n *atomic.Uint64, all chan struct{}) {
	if n.Add(1) == uint64(s.o.Idle) {
		close(all)
	}
}

// runClient is the life of client i: connect and announce, hold the
// connection until the relay restarts, then reconnect and resync.
func (s *storm) runClient(ctx context.Context, i int) {
	sc := s.clients[i]
	s.sem <- struct{}{}
	c, err := sc.connect(ctx, s.t, &s.retries)
	if err == nil {
		err = sc.announce(c)
	}
	<-s.sem
	if err != nil {
		s.e.add(err)
		return
	}
	s.track(c, true)
	s.count(&s.ready, s.allReady)
	sc.drain(c)
	s.track(c, false)
	c.Close()
	if !s.restarted.Load() || ctx.Err() != nil {
		return
	}
	if s.o.Jitter > 0 {
		time.Sleep(rand.N(s.o.Jitter))
	}
	s.rejoin(ctx, i)
}

// rejoin reconnects client i after the restart and resyncs it.
func (s *storm) rejoin(ctx context.Context, i int) {
	sc := s.clients[i]
	c, err := sc.connect(ctx, s.t, &s.retries)
	if err != nil {
		s.e.add(err)
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok && tc.ConnectionState().DidResume {
		s.resumed.Add(1)
	}
	s.track(c, true)
	if err := sc.resync(c); err != nil {
		s.e.add(err)
		s.track(c, false)
		c.Close()
		return
	}
	atomic.StoreInt64(&s.doneAt[i], int64(time.Since(s.start)))
	s.count(&s.resynced, s.allSynced)
	sc.drain(c)
}

// track adds c to the live connections, or removes it.
func (s *storm) track(c *conn, add bool) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if add {
		s.live[c] = struct{}{}
	} else {
		delete(s.live, c)
	}
}

// closeAll closes every live connection, ending the clients' reads.
func (s *storm) closeAll() {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	for c := range s.live {
		c.Close()
	}
}

// result measures from the restart to the last client's catch-up.
func (s *storm) result(before, after Usage, ok bool) *Result {
	o := s.o
	r := &Result{Scenario: o.Scenario, TLS: s.t.ClientTLS() != nil, Channels: o.Channels, Conns: o.Idle, Size: o.Size,
		Resynced: int(s.resynced.Load()), Resumed: int(s.resumed.Load()), Retries: s.retries.Load()}
	var last int64
	for i := range s.doneAt {
		last = max(last, atomic.LoadInt64(&s.doneAt[i]))
	}
	elapsed := time.Duration(last - s.restartAt.Load())
	if r.Resynced < o.Idle {
		elapsed = time.Since(s.start) - time.Duration(s.restartAt.Load())
		s.e.add(fmt.Errorf("%d of %d clients resynced", r.Resynced, o.Idle))
	}
	r.ResyncSeconds = elapsed.Seconds()
	r.Seconds = elapsed.Seconds()
	r.setUsage(s.t, before, after, ok, elapsed)
	s.e.fill(r)
	return r
}
