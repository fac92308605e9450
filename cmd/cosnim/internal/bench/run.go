package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

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

// connectRetry dials until the relay admits the client, backing off on
// refusals (accept rate, connection limit) and dial errors. It counts
// retries in *retries when not nil.
func connectRetry(ctx context.Context, t Target, readBuf int, retries *sync.Mutex, n *uint64) (*wconn, error) {
	backoff := 20 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		c, err := dialWire(dctx, t.Addr(), t.ClientTLS(), readBuf)
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
		var re *errRelay
		if errors.As(err, &re) && re.f.Code != wire.CodeRateLimited && re.f.Code != wire.CodeRelayFull && re.f.Code != wire.CodeShuttingDown {
			return nil, err
		}
		if retries != nil {
			retries.Lock()
			*n++
			retries.Unlock()
		}
		sleep := backoff/2 + rand.N(backoff)
		backoff = min(2*backoff, time.Second)
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
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
