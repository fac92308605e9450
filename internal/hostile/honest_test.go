package hostile

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/wire"
)

// latencies collects durations from one probe.
type latencies struct {
	mu     sync.Mutex // guards d and failed
	d      []time.Duration
	failed int
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }
func (l *latencies) fail()               { l.mu.Lock(); l.failed++; l.mu.Unlock() }

// summary is the max and p99, and how many probes failed.
func (l *latencies) summary() (p99, worst time.Duration, n, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.d)
	slices.Sort(d)
	if len(d) == 0 {
		return 0, 0, 0, l.failed
	}
	return d[len(d)*99/100], d[len(d)-1], len(d), l.failed
}

// honest runs, until stop, a client that pings the relay every 20ms and
// a pair of Agents on their own hub, one announcing every 50ms and the
// other timing each entry's arrival. wait stops them and reports.
func honest(t *testing.T, tg *target) (wait func() (ping, watch *latencies, lost int)) {
	t.Helper()
	ping, watch := &latencies{}, &latencies{}
	p, _, _ := tg.dial(t, "honest-pinger")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		lift := p.Bound(ctx)
		defer lift()
		for i := uint64(1); ctx.Err() == nil; i++ {
			start := time.Now()
			if err := p.Send(&wire.Ping{Data: i}); err != nil {
				ping.fail()
				return
			}
			var pong wire.Pong
			if err := p.Expect(wire.TypePong, &pong); err != nil {
				if ctx.Err() == nil {
					ping.fail()
				}
				return
			}
			ping.add(time.Since(start))
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	secret := []byte("honest hostile-suite continuum")
	mk := func() *agent.Agent {
		a, err := agent.New(agent.Options{Addrs: []string{tg.addr}, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		if err := a.Join("honest"); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
		defer wcancel()
		if err := a.WaitCaughtUp(wctx, "honest"); err != nil {
			t.Fatalf("honest agent: %v", err)
		}
		return a
	}
	from, to := mk(), mk()
	sent := map[string]time.Time{}
	var mu sync.Mutex // guards sent
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			ref := fmt.Sprintf("honest-%d", i)
			mu.Lock()
			sent[ref] = time.Now()
			mu.Unlock()
			if err := from.Announce("honest", []byte(ref)); err != nil {
				watch.fail()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	seen := map[string]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l := range to.Entries() {
			mu.Lock()
			if at, ok := sent[string(l.Ref)]; ok && !seen[string(l.Ref)] {
				seen[string(l.Ref)] = true
				watch.add(l.Time.Sub(at))
			}
			mu.Unlock()
		}
	}()
	return func() (*latencies, *latencies, int) {
		cancel()
		wg.Wait()
		// Everything announced must reach the watcher, by the feed or the
		// roster: nothing is lost.
		known := map[string]bool{}
		deadline := time.Now().Add(waitTimeout)
		lost := 0
		for {
			refs, err := to.Known("honest")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				known[string(r)] = true
			}
			mu.Lock()
			lost = 0
			for ref := range sent { // sorted: a count
				if !known[ref] {
					lost++
				}
			}
			mu.Unlock()
			if lost == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		to.Close()
		<-done
		return ping, watch, lost
	}
}

// report logs one attack's figures and checks the honest clients' bound.
func report(t *testing.T, attack string, tg *target, wait func() (*latencies, *latencies, int), bound time.Duration) {
	t.Helper()
	ping, watch, lost := wait()
	pp99, pmax, pn, pfail := ping.summary()
	wp99, wmax, wn, wfail := watch.summary()
	t.Logf("%s: honest ping p99 %v max %v (%d, %d failed); announce→watch p99 %v max %v (%d, %d failed); lost %d",
		attack, pp99, pmax, pn, pfail, wp99, wmax, wn, wfail, lost)
	checkRSS(t, attack, tg)
	if lost != 0 {
		t.Errorf("%s: %d honest entries lost", attack, lost)
	}
	if pn == 0 || pfail > 0 {
		t.Errorf("%s: honest pings: %d answered, %d failed", attack, pn, pfail)
	}
	if *targets && pp99 > bound {
		t.Errorf("%s: honest ping p99 %v over the %v target", attack, pp99, bound)
	}
}
