package relayserver_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/ratelog"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
)

// A flood of plaintext clients on a TLS port writes a few warnings and a
// count, not a line each.
func TestRefusalFloodLogsSummarised(t *testing.T) {
	p := testpki.NewPKI(t)
	cfg, _, err := tcp.ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	s := testrelay.Start(t, relayserver.Config{TLS: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const flood = 3 * ratelog.Burst
	for range flood {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("\x00\x00\x00\x0c\x01CSNM\x00\x01\x00\x01\x00")) // a plaintext Hello
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 512))
		c.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "the refusals to be logged", func() bool {
		return strings.Count(logs.String(), "plaintext client on TLS port") >= ratelog.Burst
	})
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "plaintext client on TLS port"); n > ratelog.Burst {
		t.Fatalf("%d warning lines for %d refused clients in a window, want at most %d", n, flood, ratelog.Burst)
	}
}
