package relay

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport/transporttest"
	"github.com/cosnim/relays/wire"
)

// benchChannel sets up a relay with one publisher and n members joined to
// one channel, and returns announce frames of batch entries of 128 bytes.
func benchChannel(b testing.TB, n, batch, frames int, slow bool) (*Relay, *transporttest.Conn, [][]byte) {
	r, err := New(Config{FrameRate: 1 << 30, ByteRate: 1 << 30, CacheEntries: 1 << 20, PendingEntries: 1 << 30}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	pub := benchJoin(b, r, n, slow)
	out := make([][]byte, frames)
	for i := range out {
		f := &wire.Announce{Handle: 1, Seq: uint32(i)}
		for j := range batch {
			e := make([]byte, 128)
			copy(e, fmt.Sprintf("%d/%d", i, j))
			f.Entries = append(f.Entries, e)
		}
		out[i] = wire.Append(nil, f)
	}
	return r, pub, out
}

// benchJoin opens a publisher and n members, all joined to one channel,
// and returns the publisher; slow members' queues never drain.
func benchJoin(b testing.TB, r *Relay, n int, slow bool) *transporttest.Conn {
	k, _ := roster.DeriveKeys([]byte("bench"), "hub")
	now := time.Unix(1, 0)
	join := func(c *transporttest.Conn) {
		r.Open(c, now)
		r.Data(c, wire.Append(nil, &wire.Hello{MinVersion: 1, MaxVersion: 1}), now)
		nonce := r.conns[c].nonce
		pub, sig := k.JoinProof(nonce)
		r.Data(c, wire.Append(nil, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig}), now)
	}
	pub := &transporttest.Conn{Addr: "bench", Discard: true}
	join(pub)
	for range n {
		m := &transporttest.Conn{Addr: "bench", Discard: true}
		if slow {
			m.Backlog = 1 << 30
		}
		join(m)
	}
	return pub
}

func benchmarkFanout(b *testing.B, members, batch int, slow bool) {
	const frames = 4096
	r, pub, announces := benchChannel(b, members, batch, frames, slow)
	now := time.Unix(2, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%frames == 0 && i > 0 {
			b.StopTimer()
			r, pub, announces = benchChannel(b, members, batch, frames, slow)
			b.StartTimer()
		}
		r.Data(pub, announces[i%frames], now)
	}
	b.ReportMetric(float64(b.N*batch*members)/b.Elapsed().Seconds(), "delivered/s")
}

// BenchmarkFanout10SingleAtCap is BenchmarkFanout10Single with the
// channel's cache full at the default cap, as in a long run: every entry
// is inserted and the oldest evicted, two searches of a cache too large
// for the CPU's caches.
func BenchmarkFanout10SingleAtCap(b *testing.B) { benchmarkFanoutAtCap(b, 1) }

// BenchmarkFanout10AtCap is the same with 64 entries per announce.
func BenchmarkFanout10AtCap(b *testing.B) { benchmarkFanoutAtCap(b, 64) }

func benchmarkFanoutAtCap(b *testing.B, batch int) {
	const frames = 4096
	r, err := New(Config{FrameRate: 1 << 30, ByteRate: 1 << 30, PendingEntries: 1 << 30}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	pub := benchJoin(b, r, 10, false)
	now := time.Unix(2, 0)
	seq := uint32(0)
	announces := func(gen, batch, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			f := &wire.Announce{Handle: 1, Seq: seq}
			seq++
			for j := range batch {
				e := make([]byte, 128)
				copy(e, fmt.Sprintf("%d/%d/%d", gen, i, j))
				f.Entries = append(f.Entries, e)
			}
			out[i] = wire.Append(nil, f)
		}
		return out
	}
	fill := r.cfg.CacheEntries/64 + 1
	for _, f := range announces(0, 64, fill) {
		r.Data(pub, f, now)
	}
	if r.stats.Evicted == 0 {
		b.Fatal("cache not at its cap")
	}
	fs := announces(1, batch, frames)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%frames == 0 && i > 0 {
			b.StopTimer()
			fs = announces(1+i/frames, batch, frames)
			b.StartTimer()
		}
		r.Data(pub, fs[i%frames], now)
	}
	b.ReportMetric(float64(b.N*10*batch)/b.Elapsed().Seconds(), "delivered/s")
}

func BenchmarkFanout10(b *testing.B)           { benchmarkFanout(b, 10, 64, false) }
func BenchmarkFanout100(b *testing.B)          { benchmarkFanout(b, 100, 64, false) }
func BenchmarkFanout10Single(b *testing.B)     { benchmarkFanout(b, 10, 1, false) }
func BenchmarkMergeForSlowMember(b *testing.B) { benchmarkFanout(b, 10, 64, true) }

// The per-frame path of a 1-entry announce (decode, hash, cache insert,
// fan-out encode to 10 members, ack) allocates only the cache's copy of
// the entry, apart from the cache's amortised growth.
func TestAnnounceAllocs(t *testing.T) {
	const runs = 1000
	r, pub, announces := benchChannel(t, 10, 1, runs+1, false)
	now := time.Unix(2, 0)
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		r.Data(pub, announces[i], now)
		i++
	})
	if allocs > 1 {
		t.Errorf("%.2f allocations per announce, want at most 1 (the cached copy)", allocs)
	}
}
