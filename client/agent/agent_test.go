package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
)

const apiTimeout = 20 * time.Second

func apiCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startRelay runs a relayserver.Server on addr until the returned stop,
// which fails the test if Run failed.
func startRelay(t *testing.T, addr string) (stop func()) {
	t.Helper()
	s := testrelay.Start(t, relayserver.Config{Addr: addr})
	return func() {
		if err := s.Stop(); err != nil {
			t.Errorf("relay Run: %v", err)
		}
	}
}

func newAgent(t *testing.T, addr string, buffer int) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Options{
		Addrs:         []string{addr},
		Secret:        []byte("api test secret"),
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
		EntriesBuffer: buffer,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAgentWorksWithoutRelay(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := testutil.FreeAddr(t) // nothing listens
	a := newAgent(t, addr, 0)
	defer a.Close()
	if err := a.Join("h"); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce("h", []byte("local-1")); err != nil {
		t.Fatalf("Announce without a relay: %v", err)
	}
	got, err := a.Known("h")
	if err != nil || len(got) != 1 || string(got[0]) != "local-1" {
		t.Fatalf("Known = %q, %v; want [local-1]", got, err)
	}
	if s := a.State(); s == client.Connected {
		t.Fatalf("state %v with no relay", s)
	}
	if err := a.Announce("nope", []byte("x")); !errors.Is(err, agent.ErrNotJoined) {
		t.Fatalf("Announce to an unjoined hub: %v, want ErrNotJoined", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.WaitConnected(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected with no relay: %v, want the context's error", err)
	}
}

func TestAnnounceAndWaitOnceRelayAppears(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := testutil.FreeAddr(t)
	a := newAgent(t, addr, 0)
	defer a.Close()
	if err := a.Join("h"); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- a.AnnounceAndWait(apiCtx(t), "h", []byte("early")) }()
	stop := startRelay(t, addr)
	if err := <-waited; err != nil {
		t.Fatalf("AnnounceAndWait: %v", err)
	}
	// The relay holds it: a newcomer catches up with it.
	b := newAgent(t, addr, 0)
	if err := b.Join("h"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitCaughtUp(apiCtx(t), "h"); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Known("h")
	if len(got) != 1 || string(got[0]) != "early" {
		t.Fatalf("newcomer knows %q, want [early]", got)
	}
	a.Close()
	b.Close()
	stop()
}

func TestEntriesFeedOverflowKeepsRoster(t *testing.T) {
	defer goleak.VerifyNone(t)
	addr := testutil.FreeAddr(t)
	stop := startRelay(t, addr)
	a, b := newAgent(t, addr, 0), newAgent(t, addr, 3)
	for _, ag := range []*agent.Agent{a, b} {
		if err := ag.Join("h"); err != nil {
			t.Fatal(err)
		}
		if err := ag.WaitCaughtUp(apiCtx(t), "h"); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 10 {
		ref := fmt.Sprintf("r-%02d", i)
		want = append(want, ref)
		if err := a.AnnounceAndWait(apiCtx(t), "h", []byte(ref)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(apiTimeout)
	for {
		got, _ := b.Known("h")
		if len(got) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B knows %d entries, want %d", len(got), len(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := b.Overflow(); n != 7 {
		t.Errorf("Overflow = %d, want 7 (10 learned, feed of 3 never read)", n)
	}
	b.Close()
	var fed []string
	for l := range b.Entries() { // closed by Close
		fed = append(fed, string(l.Ref))
	}
	if !slices.Equal(fed, want[:3]) {
		t.Errorf("feed = %q, want the first three", fed)
	}
	if err := b.Announce("h", []byte("late")); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Announce after Close: %v, want ErrAgentClosed", err)
	}
	a.Close()
	stop()
}

// The Agent schedules storage listings with its ListPolicy: rarely while a
// relay keeps it caught up, at the listing interval without one.
func TestAgentListingSchedule(t *testing.T) {
	listing := client.ListConfig{Soon: time.Second, ListInterval: 10 * time.Second, HealthyInterval: time.Hour, StaleAfter: 30 * time.Minute}
	newAgent := func(addr string) *agent.Agent {
		a, err := agent.New(agent.Options{Addrs: []string{addr}, Secret: []byte("s"), Listing: listing,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		if err := a.Join("hub"); err != nil {
			t.Fatal(err)
		}
		return a
	}

	alone := newAgent(testutil.FreeAddr(t))
	if err := alone.ListingStarted("hub"); err != nil {
		t.Fatal(err)
	}
	if err := alone.ListingDone("hub"); err != nil {
		t.Fatal(err)
	}
	next, err := alone.NextListing("hub")
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(next); wait > 12*time.Second {
		t.Errorf("without a relay the next listing is in %v, want about the 10s listing interval", wait)
	}

	addr := testutil.FreeAddr(t)
	stop := startRelay(t, addr)
	defer stop()
	served := newAgent(addr)
	if err := served.WaitCaughtUp(apiCtx(t), "hub"); err != nil {
		t.Fatal(err)
	}
	next, err = served.NextListing("hub")
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(next); wait < 25*time.Minute {
		t.Errorf("with a caught-up relay the next listing is in %v, want rare (about the 30m staleness bound)", wait)
	}
	if _, err := served.NextListing("elsewhere"); !errors.Is(err, agent.ErrNotJoined) {
		t.Errorf("NextListing of an unjoined hub: %v, want ErrNotJoined", err)
	}
}
