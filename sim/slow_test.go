package sim

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
)

// counter counts entries a client learns.
type counter struct {
	client.NopObserver
	n int
}

func (c *counter) Learned(_ roster.ChannelID, refs [][]byte, _ time.Time) { c.n += len(refs) }

// fanoutWithStall publishes for 10 virtual seconds to 5 readers and,
// if stall, one member whose link is clogged from the start. It returns what
// the readers received and the relay's counters.
func fanoutWithStall(t *testing.T, stall bool) ([]int, relay.Stats) {
	net := netsim.New(1, netsim.Options{Bandwidth: 2 << 20})
	k, err := roster.DeriveKeys([]byte("secret"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{PendingEntries: 500, HighWater: 32 << 10, FrameRate: 1 << 20, ByteRate: 1 << 30}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rn := net.AddNode("relay")
	rn.SetHandler(r)
	rn.Listen(relayAddr)
	start := func(name string, obs client.Observer) *client.Client {
		n := net.AddNode(name)
		c, err := client.New(client.Config{Addrs: []string{relayAddr}, AntiEntropy: time.Hour}, n.Dialer(), rand.New(rand.NewPCG(2, uint64(len(name)))), obs)
		if err != nil {
			t.Fatal(err)
		}
		n.SetHandler(c)
		if err := c.Join(k, nil, n.Now()); err != nil {
			t.Fatal(err)
		}
		c.Start(n.Now())
		return c
	}
	pub := start("pub", nil)
	readers := make([]*counter, 5)
	for i := range readers {
		readers[i] = &counter{}
		start(fmt.Sprintf("reader%d", i), readers[i])
	}
	if stall {
		start("stalled", nil)
	}
	net.RunFor(time.Second)
	if stall {
		net.Clog("stalled", "relay")
	}
	// 2000 entries of ~150 bytes a second: 300 KB/s per member.
	for i := range 20000 {
		at := net.Now().Add(time.Duration(i) * 500 * time.Microsecond)
		net.At(at, func() {
			ref := fmt.Sprintf("capsule-%06d-%0100d", i, 0)
			if _, err := pub.Announce(k.ID(), []byte(ref), at); err != nil {
				t.Error(err)
			}
		})
	}
	net.RunFor(10 * time.Second)
	got := make([]int, len(readers))
	for i, c := range readers {
		got[i] = c.n
	}
	return got, r.Stats()
}

// TestStalledMemberDoesNotSlowOthers is DERP's TestSendFreeze for the relay
// core: a member that stops reading must not slow the others; its entries
// are merged while it is slow and, past the cap, it is told to resync.
func TestStalledMemberDoesNotSlowOthers(t *testing.T) {
	base, _ := fanoutWithStall(t, false)
	with, st := fanoutWithStall(t, true)
	for i := range base {
		if base[i] == 0 {
			t.Fatalf("reader %d got nothing without a stalled member", i)
		}
		if ratio := float64(with[i]) / float64(base[i]); ratio < 0.9 {
			t.Errorf("reader %d got %d entries with a stalled member, %d without (%.2f, want ≥ 0.90)", i, with[i], base[i], ratio)
		}
	}
	t.Logf("delivered without stall %v, with %v; merged %d, resyncs %d", base, with, st.PendingMerged, st.Resyncs)
	if st.PendingMerged == 0 || st.Resyncs == 0 {
		t.Errorf("stalled member: %d entries merged, %d resyncs; want both > 0", st.PendingMerged, st.Resyncs)
	}
}
