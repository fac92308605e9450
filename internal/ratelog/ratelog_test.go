package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A flood of one message writes Burst lines in a window, then one summary
// with the count when the next window opens; other messages pass.
func TestFloodSummarised(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	log := slog.New(New(slog.NewTextHandler(&buf, nil), func() time.Time { return now }))
	for range 500 {
		log.Warn("TLS handshake refused", "remote", "x")
	}
	log.Info("relay listening")
	out := buf.String()
	if n := strings.Count(out, "TLS handshake refused"); n != Burst {
		t.Fatalf("%d lines of a 500-line flood in one window, want %d", n, Burst)
	}
	if !strings.Contains(out, "relay listening") {
		t.Fatal("another message was suppressed with the flood")
	}
	now = now.Add(Window)
	log.Warn("TLS handshake refused", "remote", "y")
	if out := buf.String(); !strings.Contains(out, "log lines suppressed") || !strings.Contains(out, "count=480") {
		t.Fatalf("no summary of 480 suppressed lines:\n%s", out[max(0, len(out)-300):])
	}
}
