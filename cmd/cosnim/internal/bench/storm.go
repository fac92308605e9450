package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// stormClient is one client of the reconnect storm.
type stormClient struct {
	k   *roster.Keys
	set roster.Set
	out []byte
}

func runStorm(ctx context.Context, t Target, o Options) (*Result, error) {
	keys := make([]*roster.Keys, o.Channels)
	for i := range keys {
		var err error
		if keys[i], err = channelKeys(i); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	clients := make([]*stormClient, o.Idle)
	for i := range clients {
		sc := &stormClient{k: keys[i%o.Channels]}
		s := newSealer(sc.k, start, uint32(i), o.Size)
		for range o.Msgs {
			sealed, err := s.seal()
			if err != nil {
				return nil, err
			}
			sc.set.Add(roster.NewEntry(sealed))
		}
		clients[i] = sc
	}

	var (
		e          errs
		retryMu    sync.Mutex
		retries    uint64
		ready      atomic.Uint64
		resynced   atomic.Uint64
		resumed    atomic.Uint64
		restarted  atomic.Bool
		restartAt  atomic.Int64 // ns since start
		doneAt     = make([]int64, o.Idle)
		liveMu     sync.Mutex
		live       = make(map[*wconn]struct{}, o.Idle)
		wg         sync.WaitGroup
		allReady   = make(chan struct{})
		allSynced  = make(chan struct{})
		readyOnce  sync.Once
		syncedOnce sync.Once
	)
	track := func(c *wconn, add bool) {
		liveMu.Lock()
		if add {
			live[c] = struct{}{}
		} else {
			delete(live, c)
		}
		liveMu.Unlock()
	}
	closeAll := func() {
		liveMu.Lock()
		for c := range live {
			c.close()
		}
		liveMu.Unlock()
	}
	defer func() { closeAll(); wg.Wait() }()
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()

	// Connections are opened by a bounded pool, reads happen in one
	// goroutine per client.
	sem := make(chan struct{}, 64)
	for i, sc := range clients {
		wg.Go(func() {
			sem <- struct{}{}
			c, err := sc.connect(ctx, t, &retryMu, &retries)
			if err == nil {
				err = sc.announce(c)
			}
			<-sem
			if err != nil {
				e.add(err)
				return
			}
			track(c, true)
			if ready.Add(1) == uint64(o.Idle) {
				readyOnce.Do(func() { close(allReady) })
			}
			sc.drain(c)
			track(c, false)
			c.close()
			if !restarted.Load() || ctx.Err() != nil {
				return
			}
			// The relay restarted: reconnect after the jitter and sync.
			if o.Jitter > 0 {
				time.Sleep(rand.N(o.Jitter))
			}
			c, err = sc.connect(ctx, t, &retryMu, &retries)
			if err != nil {
				e.add(err)
				return
			}
			if tc, ok := c.nc.(*tls.Conn); ok && tc.ConnectionState().DidResume {
				resumed.Add(1)
			}
			track(c, true)
			err = sc.resync(c)
			if err != nil {
				e.add(err)
				track(c, false)
				c.close()
				return
			}
			doneAt[i] = int64(time.Since(start))
			if resynced.Add(1) == uint64(o.Idle) {
				syncedOnce.Do(func() { close(allSynced) })
			}
			sc.drain(c)
		})
	}
	bar := startProgress(o.Progress, "connect", uint64(o.Idle), ready.Load)
	select {
	case <-allReady:
	case <-ctx.Done():
		bar.stop()
		return nil, fmt.Errorf("bench: storm: %d of %d clients connected: %w (first error: %v)", ready.Load(), o.Idle, ctx.Err(), e.first.Load())
	}
	bar.stop()

	before, ok := t.Usage()
	restarted.Store(true)
	restartAt.Store(int64(time.Since(start)))
	if err := t.Restart(ctx); err != nil {
		return nil, err
	}
	bar = startProgress(o.Progress, "resync", uint64(o.Idle), resynced.Load)
	select {
	case <-allSynced:
	case <-ctx.Done():
	}
	bar.stop()
	after, _ := t.Usage()

	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Channels: o.Channels, Conns: o.Idle, Size: o.Size,
		Resynced: int(resynced.Load()), Resumed: int(resumed.Load()), Retries: retries}
	var last int64
	for _, d := range doneAt {
		last = max(last, d)
	}
	elapsed := time.Duration(last - restartAt.Load())
	if r.Resynced < o.Idle {
		elapsed = time.Since(start) - time.Duration(restartAt.Load())
		e.add(fmt.Errorf("%d of %d clients resynced", r.Resynced, o.Idle))
	}
	r.ResyncSeconds = elapsed.Seconds()
	r.Seconds = elapsed.Seconds()
	r.setUsage(t, before, after, ok, elapsed)
	e.fill(r)
	return r, nil
}

// connect dials and joins.
func (sc *stormClient) connect(ctx context.Context, t Target, mu *sync.Mutex, n *uint64) (*wconn, error) {
	c, err := connectRetry(ctx, t, 4<<10, mu, n)
	if err != nil {
		return nil, err
	}
	if _, err := c.join(sc.k, 1); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// announce sends the client's entries and waits for the Ack.
func (sc *stormClient) announce(c *wconn) error {
	f := &wire.Announce{Handle: 1, Seq: 1}
	for _, e := range sc.set.Entries() {
		f.Entries = append(f.Entries, e.Sealed)
	}
	if err := c.send(f); err != nil {
		c.close()
		return err
	}
	var ack wire.Ack
	if err := c.expect(wire.TypeAck, &ack); err != nil {
		c.close()
		return err
	}
	return nil
}

// drain reads until the connection fails, keeping what it learns.
func (sc *stormClient) drain(c *wconn) {
	var f wire.Deliver
	for {
		t, p, err := c.next()
		if err != nil {
			return
		}
		if t == wire.TypeDeliver && f.DecodePayload(p) == nil {
			sc.learn(f.Entries)
		}
	}
}

func (sc *stormClient) learn(entries [][]byte) {
	for _, e := range entries {
		sc.set.Add(roster.NewEntry(append([]byte(nil), e...)))
	}
}

// resync runs one catch-up session, answering the relay as client.Client
// does, until every message it sent has been answered.
func (sc *stormClient) resync(c *wconn) error {
	const session = 1
	msg := sc.set.StartSync()
	var n int
	sc.out, n = wire.AppendSyncSplit(sc.out[:0], &wire.Sync{Handle: 1, Session: session, Msg: msg}, c.max)
	if _, err := c.nc.Write(sc.out); err != nil {
		return err
	}
	outstanding := n
	var fs wire.Sync
	var fd wire.Delta
	var fv wire.Deliver
	for outstanding > 0 {
		t, p, err := c.next()
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		switch t {
		case wire.TypeDeliver:
			if fv.DecodePayload(p) == nil {
				sc.learn(fv.Entries)
			}
		case wire.TypeDelta:
			if fd.DecodePayload(p) == nil {
				sc.learn(fd.Entries)
			}
		case wire.TypeError:
			var ef wire.Error
			ef.DecodePayload(p)
			return &errRelay{ef}
		case wire.TypeSync:
			if err := fs.DecodePayload(p); err != nil {
				return err
			}
			if !fs.Msg.Empty() {
				out, give := sc.set.ReplySync(&fs.Msg)
				if err := sc.sendDelta(c, session, give); err != nil {
					return err
				}
				sc.out, n = wire.AppendSyncSplit(sc.out[:0], &wire.Sync{Handle: 1, Session: session, Msg: out}, c.max)
				if _, err := c.nc.Write(sc.out); err != nil {
					return err
				}
				if !out.Empty() {
					outstanding += n
				}
			}
			if fs.Flags&wire.SyncMore == 0 {
				outstanding--
			}
		}
	}
	return nil
}

func (sc *stormClient) sendDelta(c *wconn, session uint32, give []roster.Entry) error {
	if len(give) == 0 {
		return nil
	}
	f := &wire.Delta{Handle: 1, Session: session}
	size := wire.HeaderSize + 10
	for _, e := range give {
		if size+2+len(e.Sealed) > c.max {
			return errors.New("bench: delta over the frame limit")
		}
		size += 2 + len(e.Sealed)
		f.Entries = append(f.Entries, e.Sealed)
	}
	return c.send(f)
}
