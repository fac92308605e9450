package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

func runIdle(ctx context.Context, t Target, o Options) (*Result, error) {
	keys, err := channelKeyList(o.Channels)
	if err != nil {
		return nil, err
	}
	before, ok := t.Usage()
	var retries atomic.Uint64
	start := time.Now()
	conns, err := connectAll(ctx, t, o, dialPlan{
		n: o.Idle, width: 64, readBuf: 512, label: "idle", idle: true,
		key: func(i int) *roster.Keys { return keys[i%o.Channels] },
	}, &retries)
	if err != nil {
		return nil, err
	}
	var answering sync.WaitGroup
	defer answering.Wait()
	defer closeConns(conns)
	if o.Heartbeats {
		stop := make(chan struct{})
		defer close(stop) // runs before closeConns: the pinging stops first
		for _, c := range conns {
			answering.Go(func() { answerPings(c) })
		}
		answering.Go(func() { heartbeat(conns, stop) })
	}
	// Idle connections park only after a while (tcp.LoopOptions.ParkAfter).
	settle := max(o.Settle, 0)
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	elapsed := time.Since(start)
	after, _ := t.Usage()
	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Channels: o.Channels, Conns: o.Idle, Size: o.Size, Retries: retries.Load(),
		SettleSeconds: settle.Seconds(), ScavengeSeconds: max(o.ScavengeWait, 0).Seconds()}
	r.setUsage(t, before, after, ok, elapsed)
	if ok {
		r.BytesPerConn = float64(after.HeapStack-before.HeapStack) / float64(o.Idle)
		r.RSSPerConn = float64(after.RSS-before.RSS) / float64(o.Idle)
		// The reading above ran a GC; RSS once the runtime has returned
		// what is above the new heap goal.
		select {
		case <-time.After(max(o.ScavengeWait, 0)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if steady, ok := t.Usage(); ok {
			r.RSSPerConnAfterGC = float64(steady.RSS-before.RSS) / float64(o.Idle)
		}
	}
	return r, nil
}

// heartbeat pings each of conns once per heartbeat interval, as a quiet
// instance does, spread over the interval, until stop.
func heartbeat(conns []*conn, stop <-chan struct{}) {
	if len(conns) == 0 {
		return
	}
	// Well inside the interval: the relay counts silence from the last byte.
	gap := conns[0].heartbeat / 2 / time.Duration(len(conns))
	tick := time.NewTicker(max(gap, time.Microsecond))
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(conns) {
		select {
		case <-stop:
			return
		case <-tick.C:
			conns[i].Send(&wire.Ping{Data: uint64(i)})
		}
	}
}

// answerPings reads what the relay sends c (Pongs), answers its Pings,
// and returns when c closes.
func answerPings(c *conn) {
	for {
		t, p, err := c.Next()
		if err != nil {
			return
		}
		if t == wire.TypePing {
			c.pong(p)
		}
	}
}
