package hostile

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

// rssFactor is how far the relay's peak resident set may pass its
// memory_budget under any attack.
const rssFactor = relayserver.RSSFactor

// minRSSBudget is the smallest budget for which rssFactor holds: below it
// the binary's own resident code and runtime (about 30 MiB) dominate.
const minRSSBudget = 64 << 20

// sized is full under make hostile (-hostile.targets), the size
// of an attack, and short otherwise, so that make test stays quick.
func sized(full, short int) int {
	if *targets {
		return full
	}
	return short
}

// checkRSS reports the relay's peak resident set next to its budget (as
// /status gives it) and what it accounted, and fails past rssFactor ×
// budget: memory is not a timing figure, so the bound holds in the short
// form too. report and reportGate call it for every attack.
func checkRSS(t *testing.T, attack string, tg *target) {
	t.Helper()
	st := tg.status(t)
	budget := st.Memory.Budget
	peak := tg.peakRSS(t)
	t.Logf("%s: relay peak RSS %.1f MiB, budget %.1f MiB (bound %.1f MiB); accounted %.1f MiB (caches %.1f, pending %.1f, channels %.1f, queues %.1f, buffers %.1f, conns %.1f); %d channels, %d connections",
		attack, float64(peak)/(1<<20), float64(budget)/(1<<20), rssFactor*float64(budget)/(1<<20),
		float64(st.Memory.Total)/(1<<20), float64(st.Memory.Caches)/(1<<20), float64(st.Memory.Pending)/(1<<20),
		float64(st.Memory.Channels)/(1<<20), float64(st.Memory.Queues)/(1<<20), float64(st.Memory.Buffers)/(1<<20),
		float64(st.Memory.Conns)/(1<<20), st.Channels, st.Connections)
	if budget < minRSSBudget {
		t.Logf("%s: the %.1f MiB budget is below the %d MiB from which the RSS bound holds (docs/CONFIG.md)", attack, float64(budget)/(1<<20), minRSSBudget>>20)
	} else if float64(peak) > rssFactor*float64(budget) {
		t.Errorf("%s: relay peak RSS %.1f MiB over %.1f × the %.1f MiB budget", attack, float64(peak)/(1<<20), rssFactor, float64(budget)/(1<<20))
	}
	if st.Memory.Total > budget {
		t.Errorf("%s: accounted memory %d over the %d budget", attack, st.Memory.Total, budget)
	}
}

// swarmConn joins up to chans self-made channels over one connection and
// announces one 38-byte sealed entry in each; it returns the connection,
// left open, and how many channels it joined.
func swarmConn(t *testing.T, tg *target, name string, chans int) (net.Conn, int) {
	t.Helper()
	p, w, nc := tg.dial(t, name)
	joined := 0
	for i := range chans {
		k := selfMade(t, fmt.Sprintf("%s-%d", name, i))
		h := uint32(i + 1)
		if err := p.Send(wirepeer.JoinFrame(k, h, w.Nonce)); err != nil {
			return nc, joined
		}
		var j wire.Joined
		if err := p.Expect(wire.TypeJoined, &j); err != nil {
			continue // refused: the relay is full
		}
		e, err := k.Seal(fmt.Appendf(nil, "cap-%06d", i%1_000_000)) // 10 bytes: 38 sealed
		if err != nil {
			t.Error(err)
			return nc, joined
		}
		if err := p.Send(&wire.Announce{Handle: h, Seq: 1, Entries: [][]byte{e.Sealed}}); err != nil {
			return nc, joined
		}
		var ack wire.Ack
		if err := p.Expect(wire.TypeAck, &ack); err != nil {
			return nc, joined
		}
		joined++
	}
	p.Release()
	return nc, joined
}

// swarm runs conns swarm connections, eight at a time, and returns them
// open with the number of channels they joined.
func swarm(t *testing.T, tg *target, wave string, conns, chans int) ([]net.Conn, int) {
	t.Helper()
	var mu sync.Mutex // guards ncs
	var ncs []net.Conn
	var joined atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < conns; i = int(next.Add(1)) - 1 {
				nc, n := swarmConn(t, tg, fmt.Sprintf("%s-%d", wave, i), chans)
				joined.Add(int64(n))
				mu.Lock()
				ncs = append(ncs, nc)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ncs, int(joined.Load())
}

// Outsiders open connections that each join 64 self-made channels and
// announce one small entry in each (the size: 320 connections,
// 64 MiB): the relay's peak RSS stays within rssFactor × memory_budget,
// and once they leave, their channels yield to a second wave under
// memory pressure instead of staying for channel_idle_timeout.
func TestChannelFloodMemory(t *testing.T) {
	budget := int64(64 << 20)
	conns := sized(320, 96)
	tg := startRelay(t, relayOptions{limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	wait := honest(t, tg)
	chans := wire.DefaultMaxChannels
	start := time.Now()
	ncs, joined := swarm(t, tg, "flood", conns, chans)
	t.Logf("channel flood: %d connections joined %d of %d channels in %v", len(ncs), joined, conns*chans, time.Since(start).Round(time.Millisecond))
	for _, nc := range ncs {
		nc.Close()
	}
	// A second wave after the first left: the first's channels, without
	// members, give way.
	ncs, again := swarm(t, tg, "again", conns, chans)
	st := tg.status(t)
	t.Logf("channel flood: after the first wave left, a second joined %d channels; %d channels forgotten", again, st.ChannelsForgotten)
	if again < joined/2 {
		t.Errorf("second wave joined %d channels, the first %d: channels without members did not yield", again, joined)
	}
	late, lw, _ := tg.dial(t, "late-honest")
	if _, err := late.Join(lw, selfMade(t, "late honest hub"), 1); err != nil {
		t.Errorf("an honest join was refused after the flood: %v", err)
	}
	report(t, "channel flood", tg, wait, 100*time.Millisecond)
	for _, nc := range ncs {
		nc.Close()
	}
}

// Members of a self-made channel read a byte a second while a writer
// announces 4.6 MB/s into it (the size: 300 members, 64 MiB):
// what the relay queues for them, pinned buffers included, stays counted
// and bounded, and peak RSS within rssFactor × memory_budget.
func TestSlowReadersMemory(t *testing.T) {
	budget := int64(64 << 20)
	members := sized(300, 100)
	tg := startRelay(t, relayOptions{limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	wait := honest(t, tg)
	k := selfMade(t, "slow readers")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range members {
		p, w, nc := tg.dial(t, fmt.Sprint("slow-", i))
		if _, err := p.Join(w, k, 1); err != nil {
			t.Fatalf("slow member %d: %v", i, err)
		}
		p.Release()
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096) // what the kernel holds is not the relay's
		}
		wg.Go(func() {
			var b [1]byte
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := nc.Read(b[:]); err != nil {
					if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
						return // closed by the relay
					}
				}
			}
		})
	}
	wp, ww, wnc := tg.dial(t, "writer")
	if _, err := wp.Join(ww, k, 1); err != nil {
		t.Fatal(err)
	}
	// The writer reads (and drops) its Acks and the relay's errors.
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := wnc.Read(buf); err != nil {
				return
			}
		}
	})
	begin := time.Now()
	const rate = 4_600_000 // bytes a second
	const entrySize = 1000
	perFrame := (wire.DefaultMaxFrameSize - 64) / (entrySize + 64)
	sent := 0
	end := begin.Add(*duration)
	for seq := uint32(1); time.Now().Before(end); seq++ {
		batch := make([][]byte, 0, perFrame)
		for range perFrame {
			e, err := k.Seal(fmt.Appendf(make([]byte, 0, entrySize), "slow-%d-%0*d", sent, entrySize-40, 0))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, e.Sealed)
			sent += len(e.Sealed)
		}
		if err := wp.Send(&wire.Announce{Handle: 1, Seq: seq, Entries: batch}); err != nil {
			t.Fatalf("writer: %v", err)
		}
		if ahead := time.Duration(float64(sent) / rate * float64(time.Second)); ahead > time.Since(begin) {
			time.Sleep(ahead - time.Since(begin))
		}
	}
	st := tg.status(t)
	close(stop)
	wnc.Close()
	t.Logf("slow readers: writer sent %.1f MB in %v; relay closed %d over their queue, %d as the costliest; %d resyncs, %d entries held",
		float64(sent)/1e6, time.Since(begin).Round(time.Millisecond), st.QueueFull, st.ShedConns, st.Resyncs, st.PendingMerged)
	report(t, "slow readers", tg, wait, 100*time.Millisecond)
	wg.Wait()
}
