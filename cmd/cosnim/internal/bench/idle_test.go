package bench

import (
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/wire"
)

// With --heartbeats an idle client answers each Ping, as instances do, so
// the relay does not close it at its idle timeout; it stops when the
// connection closes.
func TestAnswerPings(t *testing.T) {
	relaySide, clientSide := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		answerPings(&conn{Peer: wirepeer.New(clientSide, 512), nc: clientSide})
	}()
	relay := wirepeer.New(relaySide, 512)
	for i := range uint64(3) {
		relaySide.SetDeadline(time.Now().Add(10 * time.Second))
		if err := relay.Send(&wire.Ping{Data: 100 + i}); err != nil {
			t.Fatal(err)
		}
		f, err := relay.NextFrame()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := f.(*wire.Pong); !ok || p.Data != 100+i {
			t.Fatalf("answer to ping %d: %#v, want its Pong", i, f)
		}
	}
	relaySide.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("answerPings did not return after the connection closed")
	}
}

// heartbeat pings every client within its interval, as a quiet instance
// does, so the relay's idle timeout spares them; stop ends it.
func TestHeartbeatPingsEveryClient(t *testing.T) {
	const n = 3
	var conns []*conn
	var relays []*wirepeer.Peer
	for range n {
		relaySide, clientSide := net.Pipe()
		defer relaySide.Close()
		relaySide.SetDeadline(time.Now().Add(10 * time.Second))
		conns = append(conns, &conn{Peer: wirepeer.New(clientSide, 512), nc: clientSide, heartbeat: 60 * time.Millisecond})
		relays = append(relays, wirepeer.New(relaySide, 512))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); heartbeat(conns, stop) }()
	for range 2 {
		for i, r := range relays {
			f, err := r.NextFrame()
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if _, ok := f.(*wire.Ping); !ok {
				t.Fatalf("client %d sent %#v, want a Ping", i, f)
			}
		}
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("heartbeat did not stop")
	}
}
