package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

// announceFrames announces n refs in a burst through an Agent with delay
// and reports how many Announce frames the relay read.
func announceFrames(t *testing.T, delay time.Duration, n int) uint64 {
	t.Helper()
	s, err := relayserver.New(relayserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Listening()
	a, err := agent.New(agent.Options{Addrs: []string{s.Addr().String()}, Secret: []byte("coalesce"), AnnounceDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Join("hub"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), apiTimeout)
	defer wcancel()
	if err := a.WaitCaughtUp(wctx, "hub"); err != nil {
		t.Fatal(err)
	}
	for i := range n - 1 {
		if err := a.Announce("hub", fmt.Appendf(nil, "ref-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AnnounceAndWait(wctx, "hub", []byte("last")); err != nil {
		t.Fatal(err)
	}
	st, _, _, _ := s.Stats()
	if st.EntriesIn != uint64(n) {
		t.Fatalf("relay stored %d entries, want %d", st.EntriesIn, n)
	}
	return st.FramesIn[wire.TypeAnnounce]
}

// By default an Agent's announces made together share Announce frames;
// with coalescing off each has its own.
func TestAgentCoalescesAnnounces(t *testing.T) {
	const n = 200
	if got := announceFrames(t, -1, n); got != n {
		t.Fatalf("coalescing off: %d Announce frames for %d announces, want %d", got, n, n)
	}
	if got := announceFrames(t, 0, n); got >= n/2 {
		t.Fatalf("default delay: %d Announce frames for %d announces made in a burst, want far fewer", got, n)
	}
}
