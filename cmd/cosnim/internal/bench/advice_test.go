package bench

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/wire"
)

func TestAdviceNamesTheLimit(t *testing.T) {
	limits := []wire.Limit{{Key: wire.LimitByteRate, Value: 1 << 20}, {Key: wire.LimitFrameRate, Value: 500},
		{Key: wire.LimitIdleTimeoutMilli, Value: 45000}, {Key: wire.LimitPendingEntries, Value: 10000}}
	remote := func(c wire.Code) error {
		return fmt.Errorf("publisher: %w", &wirepeer.RemoteError{Frame: wire.Error{Code: c, Flags: wire.ErrorFatal}})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{remote(wire.CodeRateLimited), "raise the relay's byte_rate (now 1MiB) or frame_rate (now 500)"},
		{remote(wire.CodeIdle), "raise the relay's idle_timeout (now 45s)"},
		{remote(wire.CodeResync), "pending_entries (now 10000)"},
		{fmt.Errorf("%w: quiet", errStalled), "the relay stopped delivering"},
	} {
		if got := advice(tc.err, limits, false); !strings.Contains(got, tc.want) {
			t.Errorf("advice(%v) = %q, want it to say %q", tc.err, got, tc.want)
		}
	}
	if got := advice(remote(wire.CodeRateLimited), limits, true); !strings.Contains(got, "drop --ignore-limits") {
		t.Errorf("with --ignore-limits: %q", got)
	}
}

// A publisher's window (and a batch) fits in what the relay holds for a
// slow member, so that no subscriber is told to resync.
func TestFitWindow(t *testing.T) {
	limits := []wire.Limit{{Key: wire.LimitPendingEntries, Value: 10000}}
	o := Options{Window: 16384, Batch: 64}
	if got := o.fitWindow(limits).Window; got != 10000-64 {
		t.Errorf("window %d, want %d", got, 10000-64)
	}
	if got := o.fitWindow(nil).Window; got != 16384 {
		t.Errorf("no limit advertised: window %d, want 16384", got)
	}
	o.IgnoreLimits = true
	if got := o.fitWindow(limits).Window; got != 16384 {
		t.Errorf("--ignore-limits: window %d, want 16384", got)
	}
}

func TestBenchHelloEndsALine(t *testing.T) {
	if hello := wire.Append(nil, wirepeer.HelloFrame(benchAgent)); !strings.Contains(string(hello), "\n") {
		t.Fatalf("Hello %q holds no newline: an HTTP port would answer only after its header timeout", hello)
	}
}
