package bench

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/wire"
)

// blackHole is a relay that admits clients and delivers nothing.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				p := wirepeer.New(nc, 0)
				for {
					f, err := p.NextFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *wire.Hello:
						p.Send(&wire.Welcome{Version: wire.Version})
					case *wire.Join:
						p.Send(&wire.Joined{Handle: f.Handle, Flags: wire.JoinedComplete})
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A run against a relay that stops delivering ends once nothing moved for
// stallTimeout, incomplete, and says so.
func TestFanoutStallEndsTheRun(t *testing.T) {
	defer func(d time.Duration) { stallTimeout = d }(stallTimeout)
	stallTimeout = 300 * time.Millisecond
	start := time.Now()
	r, err := Run(context.Background(), External(blackHole(t), nil, 0), Options{Pub: 1, Sub: 2, Msgs: 100, Batch: 10, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*stallTimeout {
		t.Fatalf("took %v for a stall timeout of %v", took, stallTimeout)
	}
	if r.Complete || !strings.Contains(r.FirstError, "stalled") || !strings.Contains(r.Advice, "stopped delivering") {
		t.Fatalf("complete %v, first error %q, advice %q; want an incomplete run, stalled", r.Complete, r.FirstError, r.Advice)
	}
	if r.Errors != 1 {
		t.Fatalf("%d errors, want 1: the closed connections are the stall's echoes", r.Errors)
	}
}
