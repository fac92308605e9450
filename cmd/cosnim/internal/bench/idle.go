package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/roster"
)

func runIdle(ctx context.Context, t Target, o Options) (*Result, error) {
	keys := make([]*roster.Keys, o.Channels)
	for i := range keys {
		var err error
		if keys[i], err = channelKeys(i); err != nil {
			return nil, err
		}
	}
	before, ok := t.Usage()
	conns := make([]*wconn, o.Idle)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	var retryMu sync.Mutex
	var retries uint64
	var joined atomic.Uint64
	bar := startProgress(o.Progress, "idle", uint64(o.Idle), joined.Load)
	start := time.Now()
	err := parallel(o.Idle, 64, func(i int) error {
		c, err := connectRetry(ctx, t, 512, &retryMu, &retries)
		if err != nil {
			return err
		}
		if _, err := c.join(keys[i%o.Channels], 1); err != nil {
			c.close()
			return err
		}
		c.br, c.buf, c.out = nil, nil, nil // hold the socket only
		conns[i] = c
		joined.Add(1)
		return nil
	})
	bar.stop()
	if err != nil {
		return nil, fmt.Errorf("bench: connecting: %w", err)
	}
	elapsed := time.Since(start)
	after, _ := t.Usage()
	r := &Result{Scenario: o.Scenario, TLS: t.ClientTLS() != nil, Channels: o.Channels, Conns: o.Idle, Size: o.Size, Retries: retries}
	r.setUsage(t, before, after, ok, elapsed)
	if ok {
		r.BytesPerConn = float64(after.HeapStack-before.HeapStack) / float64(o.Idle)
		r.RSSPerConn = float64(after.RSS-before.RSS) / float64(o.Idle)
	}
	return r, nil
}
