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
		relaySide.SetDeadline(time.Now().Add(10*time.Second))
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
	case <-time.After(10*time.Second):
		t.Fatal("answerPings did not return after the connection closed")
	}
}
