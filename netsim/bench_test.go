package netsim

import (
	"fmt"
	"testing"
	"time"

	"github.com/cosnim/relays/transport"
)

// BenchmarkTenNodes measures events per second for 10 nodes, each dialing
// every other and sending a small message on each connection every
// millisecond of virtual time, which the peer echoes.
func BenchmarkTenNodes(b *testing.B) {
	n := New(1, Options{SplitReads: true})
	const nodes = 10
	msg := []byte("a small roster message of about fifty bytes......")
	for i := range nodes {
		nd := n.AddNode(fmt.Sprintf("n%d", i))
		r := newRec(nd.Name())
		r.echo = true
		var dialed []transport.Conn
		r.onTimer = func(now time.Time) {
			for _, c := range dialed {
				_ = c.Send(msg)
			}
			r.after(now.Add(time.Millisecond))
		}
		r.after(nd.Now().Add(time.Millisecond))
		nd.SetHandler(r)
		nd.Listen(nd.Name())
		r.got = nil // not recorded: keeps memory flat
		n.At(n.Now(), func() {
			for j := range nodes {
				if j != i {
					dialed = append(dialed, nd.Dialer().Dial(fmt.Sprintf("n%d", j)))
				}
			}
		})
	}
	b.ResetTimer()
	for b.Loop() {
		n.Step()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
