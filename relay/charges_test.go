package relay

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// heapAlloc is the live heap after a collection.
func heapAlloc() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// chargeTolerance is how far the budget's charge for a structure may
// stray from the heap it takes: never under by more than 10 % (the
// budget must bound real memory) nor over by more than 35 % (a charge
// that is too dear refuses what would fit).
const (
	chargeUnder = 0.90
	chargeOver  = 1.35
)

// measure runs prepare (whose allocations are not counted), then the
// step it returns, and compares the heap the step left with what the
// budget charges for it, per structure.
func measure(t *testing.T, what string, n int, h *harness, prepare func() func()) {
	t.Helper()
	step := prepare()
	heap0, charged0 := heapAlloc(), h.sampledMemory()
	step()
	heap1, charged1 := heapAlloc(), h.sampledMemory()
	runtime.KeepAlive(step) // and what prepare made, which it holds
	runtime.KeepAlive(h)
	real := float64(heap1-heap0) / float64(n)
	charged := float64(charged1-charged0) / float64(n)
	t.Logf("%s: %.0f bytes of heap each, charged %.0f (%.2f×)", what, real, charged, charged/real)
	if charged < chargeUnder*real || charged > chargeOver*real {
		t.Errorf("%s: charged %.0f bytes each for %.0f of heap: want %.2f..%.2f× (memory.go's costs)", what, charged, real, chargeUnder, chargeOver)
	}
}

// sampledMemory is the estimate with send queues sampled afresh (what
// was sent since the last sample counts until then).
func (h *harness) sampledMemory() int64 {
	h.now = h.now.Add(queueSample)
	h.r.Tick(h.now)
	return h.r.Memory()
}

// chargeConfig lets one connection make many channels quickly.
func chargeConfig(n int) Config {
	return Config{MaxChannels: n, JoinRate: 1 << 20, FrameRate: 1 << 20, ByteRate: 1 << 30,
		AcceptRate: 1 << 20, MaxConnections: 1 << 20, ChannelIdleTimeout: time.Hour}
}

// joinFrames encodes joins of n channels of their own over c's nonce,
// and one 38-byte announce in each.
func joinFrames(t *testing.T, w *wire.Welcome, n int) (joins, announces [][]byte) {
	t.Helper()
	for i := range n {
		k, err := roster.DeriveKeys([]byte("charges"), fmt.Sprint("hub-", i))
		if err != nil {
			t.Fatal(err)
		}
		pub, sig := k.JoinProof(w.Nonce)
		joins = append(joins, wire.Append(nil, &wire.Join{Handle: uint32(i + 1), Channel: k.ID(), Pub: pub, Sig: sig}))
		e := seal(t, k, fmt.Sprintf("cap-%06d", i)) // 38 sealed bytes
		announces = append(announces, wire.Append(nil, &wire.Announce{Handle: uint32(i + 1), Seq: 1, Entries: [][]byte{e.Sealed}}))
	}
	return joins, announces
}

// What the memory budget charges for each structure the relay holds is
// what it costs in heap, measured over many of them.
func TestChargesMatchHeap(t *testing.T) {
	const n = 4000
	t.Run("channel with one entry", func(t *testing.T) {
		h := newHarness(t, chargeConfig(n))
		c, w := h.connect("swarm")
		c.Discard = true
		measure(t, "channel with a member and one 38-byte entry", n, h, func() func() {
			joins, announces := joinFrames(t, w, n)
			return func() {
				for i := range n {
					h.r.Data(c, joins[i], h.now)
					h.r.Data(c, announces[i], h.now)
				}
			}
		})
	})
	t.Run("channel left empty", func(t *testing.T) {
		h := newHarness(t, chargeConfig(n))
		c, w := h.connect("swarm")
		c.Discard = true
		measure(t, "channel without members or entries", n, h, func() func() {
			joins, _ := joinFrames(t, w, n)
			leaves := make([][]byte, n)
			for i := range n {
				leaves[i] = wire.Append(nil, &wire.Leave{Handle: uint32(i + 1)})
			}
			return func() {
				for i := range n {
					h.r.Data(c, joins[i], h.now)
					h.r.Data(c, leaves[i], h.now)
				}
			}
		})
	})
	t.Run("cached entries", func(t *testing.T) {
		const entries = 20000
		h := newHarness(t, chargeConfig(n))
		c, w := h.connect("writer")
		k := keys(t, "big")
		h.join(c, w, k, 1)
		c.Discard = true
		measure(t, "cached entry of 100 sealed bytes", entries, h, func() func() {
			var frames [][]byte
			for i := 0; i < entries; i += 100 {
				var batch [][]byte
				for j := range 100 {
					batch = append(batch, seal(t, k, fmt.Sprintf("capsule-reference-%0*d", 100-28-18, i+j)).Sealed)
				}
				frames = append(frames, wire.Append(nil, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: batch}))
			}
			return func() {
				for _, f := range frames {
					h.r.Data(c, f, h.now)
				}
			}
		})
	})
	t.Run("connections", func(t *testing.T) {
		h := newHarness(t, chargeConfig(n))
		measure(t, "connection after Hello", n, h, func() func() {
			fakes := make([]transporttest.Conn, n)
			hello := wire.Append(nil, &wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: "instance"})
			return func() {
				for i := range fakes {
					fakes[i].Discard = true
					h.r.Open(&fakes[i], h.now)
					h.r.Data(&fakes[i], hello, h.now)
				}
			}
		})
	})
	t.Run("members", func(t *testing.T) {
		h := newHarness(t, chargeConfig(n))
		k := keys(t, "shared")
		h.member("first", k, 1)
		measure(t, "member of a shared channel", n, h, func() func() {
			fakes := make([]transporttest.Conn, n)
			hello := wire.Append(nil, &wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: "instance"})
			joins := make([][]byte, n)
			// The nonces are drawn in Open: open first, then make proofs.
			for i := range fakes {
				fakes[i].Discard = true
				h.r.Open(&fakes[i], h.now)
				h.r.Data(&fakes[i], hello, h.now)
			}
			for i := range fakes {
				pub, sig := k.JoinProof(h.r.conns[&fakes[i]].nonce)
				joins[i] = wire.Append(nil, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
			}
			return func() {
				for i := range fakes {
					h.r.Data(&fakes[i], joins[i], h.now)
				}
			}
		})
	})
	t.Run("pending entries", func(t *testing.T) {
		const entries = 5000
		// A cache of one: the held entries alone keep their sealed bytes,
		// as after an eviction.
		h := newHarness(t, Config{PendingEntries: entries, CacheEntries: 1, FrameRate: 1 << 20, ByteRate: 1 << 30})
		k := keys(t, "slow")
		a := h.member("writer", k, 1)
		b := h.member("slow", k, 1)
		a.Discard, b.Discard = true, true
		b.Backlog = DefaultHighWater + 1
		measure(t, "entry held for a slow member, evicted from the cache", entries, h, func() func() {
			var frames [][]byte
			for i := 0; i < entries; i += 100 {
				var batch [][]byte
				for j := range 100 {
					batch = append(batch, seal(t, k, fmt.Sprintf("capsule-reference-%0*d", 100-28-18, i+j)).Sealed)
				}
				frames = append(frames, wire.Append(nil, &wire.Announce{Handle: 1, Seq: uint32(i), Entries: batch}))
			}
			return func() {
				for _, f := range frames {
					h.r.Data(a, f, h.now)
				}
			}
		})
	})
}
