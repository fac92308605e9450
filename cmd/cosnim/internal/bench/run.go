package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Run runs the scenario of o against t. o is completed with WithDefaults
// and checked with Validate first.
func Run(ctx context.Context, t Target, o Options) (*Result, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cpu := selfCPU()
	r, err := run(ctx, t, o)
	if r != nil {
		r.BenchCPUSeconds = (selfCPU() - cpu).Seconds()
		r.conclude(o.IgnoreLimits)
	}
	return r, err
}

func run(ctx context.Context, t Target, o Options) (*Result, error) {
	if nt, ok := t.(*natsTarget); ok {
		return runNATS(ctx, nt, o)
	}
	switch o.Scenario {
	case ScenarioFanout:
		return runFanout(ctx, t, o)
	case ScenarioChannels:
		return runChannels(ctx, t, o)
	case ScenarioStorm:
		return runStorm(ctx, t, o)
	default:
		return runIdle(ctx, t, o)
	}
}

// connectRetry dials and joins k's channel until the relay admits the
// client, backing off on refusals (accept rate, connection limit) and dial
// errors, which it counts in retries.
func connectRetry(ctx context.Context, t Target, readBuf int, k *roster.Keys, retries *atomic.Uint64) (*conn, error) {
	backoff := 20 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		c, err := dial(dctx, t.Addr(), t.ClientTLS(), readBuf, k)
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		if !retryable(err) {
			return nil, err
		}
		retries.Add(1)
		sleep := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, time.Second)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
	}
}

// retryable reports a dial error worth another try: any but a permanent
// one (see agent.IsPermanent) or an Error frame other than the relay's
// refusals for load.
func retryable(err error) bool {
	if agent.IsPermanent(err) {
		return false
	}
	var re *wirepeer.RemoteError
	if !errors.As(err, &re) {
		return true
	}
	switch re.Frame.Code {
	case wire.CodeRateLimited, wire.CodeRelayFull, wire.CodeShuttingDown:
		return true
	}
	return false
}

// dialPlan says how connectAll opens a scenario's clients.
type dialPlan struct {
	n, width int                    // clients, and how many connect at once
	readBuf  int                    // read buffer of each
	key      func(int) *roster.Keys // the channel client i joins
	label    string                 // progress bar
	idle     bool                   // release the buffers once joined
}

// connectAll opens the clients of p. On an error it closes those it opened.
func connectAll(ctx context.Context, t Target, o Options, p dialPlan, retries *atomic.Uint64) ([]*conn, error) {
	cs := make([]*conn, p.n)
	var joined atomic.Uint64
	bar := startProgress(o, p.label, uint64(p.n), joined.Load)
	err := parallel(p.n, p.width, func(i int) error {
		c, err := connectRetry(ctx, t, p.readBuf, p.key(i), retries)
		if err != nil {
			return err
		}
		if p.idle {
			c.Release() // hold the socket only
		}
		if !o.IgnoreLimits {
			c.pace = newLimitPacer(c.limits)
		}
		cs[i] = c
		joined.Add(1)
		return nil
	})
	bar.stop()
	if err != nil {
		closeConns(cs)
		return nil, fmt.Errorf("bench: connecting: %w", err)
	}
	return cs, nil
}

// closeConns closes every client of cs that was opened.
func closeConns(cs []*conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// parallel runs f(i) for i in 0..n-1 on at most width goroutines and
// returns the first error.
func parallel(n, width int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range min(width, n) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
