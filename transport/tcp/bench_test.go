package tcp

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/transport"
)

const benchFrame = 32 // bytes per frame in the fan-out benchmark

// fanout forwards every whole frame read from the first connection that
// sends data to every other connection, one Send per frame and receiver.
type fanout struct {
	funcHandler
	conns  []transport.Conn
	opened chan struct{}
	rest   []byte
}

func newFanout(n int) *fanout {
	f := &fanout{opened: make(chan struct{}, n+1)}
	f.open = func(c transport.Conn) { f.conns = append(f.conns, c); f.opened <- struct{}{} }
	f.data = f.forward
	return f
}

func (f *fanout) forward(src transport.Conn, b []byte) {
	if len(f.rest) > 0 {
		need := benchFrame - len(f.rest)
		if len(b) < need {
			f.rest = append(f.rest, b...)
			return
		}
		f.rest = append(f.rest, b[:need]...)
		f.send(src, f.rest)
		f.rest = f.rest[:0]
		b = b[need:]
	}
	for len(b) >= benchFrame {
		f.send(src, b[:benchFrame])
		b = b[benchFrame:]
	}
	f.rest = append(f.rest, b...)
}

func (f *fanout) send(src transport.Conn, frame []byte) {
	for _, c := range f.conns {
		if c != src {
			c.Send(frame)
		}
	}
}

// BenchmarkFanout: one sender, 10 receivers, 32-byte frames over loopback.
// One op is one frame delivered to all ten receivers.
func BenchmarkFanout(b *testing.B) {
	const receivers = 10
	f := newFanout(receivers)
	l := NewLoop(f, LoopOptions{HighWater: 64 << 20, LowWater: 32 << 20})
	ln := listen(b)
	serve(b, l, ln)

	var wg sync.WaitGroup
	want := int64(b.N) * benchFrame
	var rconns []net.Conn
	for range receivers {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		rconns = append(rconns, nc)
		<-f.opened
	}
	sender, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	<-f.opened

	batch := make([]byte, 1024*benchFrame)
	for i := 0; i < len(batch); i += benchFrame {
		binary.BigEndian.PutUint64(batch[i:], uint64(i))
	}
	b.SetBytes(benchFrame)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, nc := range rconns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(time.Minute))
			io.CopyN(io.Discard, nc, want)
		}()
	}
	for left := want; left > 0; {
		n := min(left, int64(len(batch)))
		if _, err := sender.Write(batch[:n]); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*receivers)/time.Since(start).Seconds(), "frames-delivered/s")
}

// BenchmarkIdleConnMemory reports Go heap plus stack bytes per idle
// accepted connection, after each has carried a little traffic. The
// figure includes the test's own client side of each connection.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		b.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(b *testing.B) {
			for range b.N {
				measureIdle(b, 2000, useTLS)
			}
		})
	}
}

func measureIdle(b *testing.B, n int, useTLS bool) {
	h := &funcHandler{data: func(c transport.Conn, p []byte) { c.Send(p) }}
	l := NewLoop(h, LoopOptions{})
	raw := listen(b)
	var ln net.Listener = raw
	dial := NetDialer(nil)
	if useTLS {
		p := testpki.NewPKI(b)
		cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		ln = tls13Listener(raw, cfg)
		dial = NetDialer(clientConfig(b, p, "", ""))
	}
	serve(b, l, ln)

	memNow := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	before := memNow()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	msg := make([]byte, 2048)
	reply := make([]byte, len(msg))
	for range n {
		nc, err := dial(b.Context(), raw.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, nc)
		nc.Write(msg)
		if _, err := io.ReadFull(nc, reply); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let writers end
	after := memNow()
	b.ReportMetric(float64(after-before)/float64(n), "bytes/conn")
}
