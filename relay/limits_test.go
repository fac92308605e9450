package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

func TestFrameRateLimit(t *testing.T) {
	h := newHarness(t, Config{FrameRate: 10})
	c, _ := h.connect("a") // hello used one frame of the burst
	for range 9 {
		h.send(c, &wire.Ping{})
	}
	if c.Closed {
		t.Fatal("closed within the burst")
	}
	c.Frames(t)
	h.send(c, &wire.Ping{})
	wantError(t, c.Frames(t), wire.CodeRateLimited, true)
	if !c.Closed {
		t.Fatal("connection over its frame rate left open")
	}
	// A second later the next connection may send its burst again.
	h.now = h.now.Add(time.Second)
	d, _ := h.connect("b")
	h.send(d, &wire.Ping{})
	if d.Closed {
		t.Fatal("a fresh connection was limited")
	}
	if s := h.r.Stats(); s.RateLimited != 1 {
		t.Fatalf("RateLimited = %d, want 1", s.RateLimited)
	}
}

func TestByteRateLimit(t *testing.T) {
	h := newHarness(t, Config{ByteRate: 4096, MaxFrameSize: 4096, MaxEntrySize: 1000})
	k := keys(t, "hub")
	c := h.member("a", k, 1)
	for i := 0; !c.Closed && i < 10; i++ {
		e := seal(t, k, fmt.Sprintf("%0900d", i))
		h.send(c, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{e.Sealed}})
	}
	if !c.Closed {
		t.Fatal("10 KB in no time passed a 4 KB/s byte rate")
	}
	wantError(t, c.Frames(t), wire.CodeRateLimited, true)
}

func TestAcceptRateLimit(t *testing.T) {
	h := newHarness(t, Config{AcceptRate: 3})
	for i := range 3 {
		h.connect(fmt.Sprint(i))
	}
	c := &transporttest.Conn{Addr: "fourth"}
	h.r.Open(c, h.now)
	wantError(t, c.Frames(t), wire.CodeRateLimited, true)
	h.now = h.now.Add(time.Second)
	h.connect("later")
}

func TestMemoryBudgetSheds(t *testing.T) {
	const budget = 64 << 10
	h := newHarness(t, Config{MemoryBudget: budget, MaxEntrySize: 1000})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	for i := range 200 {
		e := seal(t, k, fmt.Sprintf("%0800d", i))
		h.send(a, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: [][]byte{e.Sealed}})
		if m := h.r.Memory(); m > budget+2048 {
			t.Fatalf("after %d announces the relay holds %d bytes by its estimate, over the %d budget", i+1, m, budget)
		}
	}
	if s := h.r.Stats(); s.Evicted == 0 {
		t.Fatal("nothing evicted: the budget was never reached, the test proves nothing")
	}
	// Connections count too: past the budget new ones are refused.
	h2 := newHarness(t, Config{MemoryBudget: 16 * connCost, AcceptRate: 1000})
	for i := 0; i <= 16; i++ {
		h2.connect(fmt.Sprint(i))
	}
	c := &transporttest.Conn{Addr: "over"}
	h2.r.Open(c, h2.now)
	wantError(t, c.Frames(t), wire.CodeRelayFull, true)
	if s := h2.r.Stats(); s.Shed != 1 {
		t.Fatalf("Shed = %d, want 1", s.Shed)
	}
}
