package relayserver_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

var soak = flag.Duration("soak", 0, "run TestSoak for this long (make soak)")

// churnClient is one short life of a client on a real socket, in one of
// several patterns: full session, vanish after hello, half a frame, garbage,
// or an idle join held for a while.
func churnClient(addr string, k *roster.Keys, rng *rand.Rand) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	write := func(f wire.Frame) bool {
		_, err := nc.Write(wire.Append(nil, f))
		return err == nil
	}
	pattern := rng.IntN(5)
	if pattern == 0 {
		return // connect and leave
	}
	if pattern == 1 {
		nc.Write([]byte{0, 0, 0, 200, byte(wire.TypeHello), 'C', 'S'}) // half a frame
		return
	}
	if pattern == 2 {
		garbage := make([]byte, 64)
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		nc.Write(garbage)
		return
	}
	if !write(&wire.Hello{MinVersion: 1, MaxVersion: 1}) {
		return
	}
	var welcome wire.Welcome
	var rd wire.Reader
	buf := make([]byte, 4096)
	for welcome.Version == 0 {
		n, err := nc.Read(buf)
		if err != nil {
			return
		}
		rd.Feed(buf[:n], func(t wire.Type, p []byte) error {
			if t == wire.TypeWelcome {
				return welcome.DecodePayload(p)
			}
			return nil
		})
	}
	pub, sig := k.JoinProof(welcome.Nonce)
	write(&wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
	write(&wire.Ping{Data: 1})
	if pattern == 4 {
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
	}
}

// churn runs waves of clients against a relay until stop says so.
func churn(t *testing.T, addr string, clients, parallel int, stop func(done int) bool) int {
	keys := make([]*roster.Keys, 8)
	for i := range keys {
		keys[i], _ = roster.DeriveKeys([]byte("churn"), fmt.Sprint("hub", i))
	}
	var wg sync.WaitGroup
	done := 0
	for wave := 0; !stop(done); wave++ {
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(wave), uint64(i)))
				churnClient(addr, keys[rng.IntN(len(keys))], rng)
			}()
		}
		wg.Wait()
		done += parallel
	}
	return done
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// startChurnRelay runs a relay that accepts connections as fast as the
// churn opens them and gives up on silent handshakes within a second.
func startChurnRelay(t *testing.T) *testrelay.Server {
	return testrelay.Start(t, relayserver.Config{
		Relay:      relay.Config{AcceptRate: 100000, HandshakeTimeout: time.Second},
		DrainGrace: 200 * time.Millisecond,
	})
}

// TestChurnLeavesNothingBehind connects and disconnects 1,000 clients in
// random patterns, then checks the relay holds no connection, memory is back
// near its baseline, and, once stopped, no goroutine is left.
func TestChurnLeavesNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := startChurnRelay(t)
	addr := srv.Addr().String()
	churn(t, addr, 1000, 100, func(n int) bool { return n >= 1000 }) // warm up to steady size: after 100, a one-off 1 MB step remained
	base := heapInUse()
	n := churn(t, addr, 1000, 100, func(n int) bool { return n >= 1000 })
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, conns, _, ok := srv.Stats()
		if ok && conns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay still holds %d connections after %d clients left", conns, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := heapInUse()
	t.Logf("%d clients; heap in use %d KB before, %d KB after", n, base>>10, after>>10)
	if after > base+1<<20 {
		t.Errorf("heap grew from %d KB to %d KB over %d short-lived clients", base>>10, after>>10, n)
	}
	st, _, _, _ := srv.Stats()
	if st.Conns < uint64(n) || st.ProtocolErrors == 0 {
		t.Errorf("stats: %d connections, %d protocol errors; the churn did not reach the relay", st.Conns, st.ProtocolErrors)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSoak runs the churn for -soak (make soak) and prints memory and
// goroutines over time.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("run with -soak=DURATION (make soak)")
	}
	defer goleak.VerifyNone(t)
	srv := startChurnRelay(t)
	end := time.Now().Add(*soak)
	next := time.Now()
	total := churn(t, srv.Addr().String(), 0, 100, func(n int) bool {
		if time.Now().After(next) {
			st, conns, channels, _ := srv.Stats()
			fmt.Printf("%s clients=%d live=%d channels=%d heap_kb=%d goroutines=%d protocol_errors=%d\n",
				time.Now().Format(time.TimeOnly), n, conns, channels, heapInUse()>>10, runtime.NumGoroutine(), st.ProtocolErrors)
			next = time.Now().Add(10 * time.Second)
		}
		return time.Now().After(end)
	})
	fmt.Printf("soak done: %d clients\n", total)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
}
