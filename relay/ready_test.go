package relay

import (
	"testing"
	"time"

	"github.com/cosnim/relays/wire"
)

// A channel emptied by CloseAll counts as empty from the CloseAll, not from
// the last event before it.
func TestCloseAllStampsChannelWithItsOwnTime(t *testing.T) {
	h := newHarness(t, Config{ChannelIdleTimeout: 10 * time.Minute})
	k := keys(t, "hub")
	h.member("a", k, 1)
	closedAt := h.now.Add(9 * time.Minute)
	h.r.CloseAll(closedAt)
	h.r.Tick(h.now.Add(10 * time.Minute))
	if n := h.r.ChannelCount(); n != 1 {
		t.Fatalf("channel forgotten 1m after CloseAll emptied it (idle timeout 10m): %d channels left", n)
	}
	h.r.Tick(closedAt.Add(10 * time.Minute))
	if n := h.r.ChannelCount(); n != 0 {
		t.Fatalf("%d channels left 10m after CloseAll, want 0", n)
	}
}

// Ready hands the driver the fan-out count of the events since the last
// call, and then nothing.
func TestReadyCountsFanout(t *testing.T) {
	h := newHarness(t, Config{})
	k := keys(t, "hub")
	a := h.member("a", k, 1)
	h.member("b", k, 1)
	h.member("d", k, 1)
	h.r.Ready()
	h.send(a, &wire.Announce{Handle: 1, Entries: [][]byte{seal(t, k, "x").Sealed, seal(t, k, "y").Sealed}})
	if got := h.r.Ready().FannedOut; got != 4 {
		t.Fatalf("FannedOut = %d after 2 entries to 2 members, want 4", got)
	}
	if got := h.r.Ready().FannedOut; got != 0 {
		t.Fatalf("FannedOut = %d on a second Ready, want 0", got)
	}
}
