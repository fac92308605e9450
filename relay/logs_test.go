package relay

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cosnim/relays/wire"
)

// A flood of denied joins writes logBurst lines, then one summary.
func TestLogFloodSummarised(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, Config{Logger: slog.New(slog.NewTextHandler(&buf, nil)), FrameRate: 100000, MaxChannels: 1})
	k, other := keys(t, "hub"), keys(t, "other")
	const flood = 1000
	for range flood {
		c, w := h.connect("attacker")
		pub, sig := other.JoinProof(w.Nonce)
		h.send(c, &wire.Join{Handle: 1, Channel: k.ID(), Pub: pub, Sig: sig})
		h.r.Closed(c, nil, h.now)
	}
	if n := strings.Count(buf.String(), "join denied"); n != logBurst {
		t.Fatalf("%d denial lines for %d denials in one window, want %d", n, flood, logBurst)
	}
	h.r.Tick(h.now.Add(logWindow))
	out := buf.String()
	if !strings.Contains(out, "log lines suppressed") || !strings.Contains(out, "count=980") {
		t.Fatalf("no summary of the %d suppressed lines after the window:\n%s", flood-logBurst, out[max(0, len(out)-400):])
	}
	if st := h.r.Stats(); st.JoinsDenied != flood {
		t.Fatalf("counted %d denials, want %d: counters must not be limited", st.JoinsDenied, flood)
	}
}
