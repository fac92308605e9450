package bench

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/wire"
)

// errStalled ends a run in which nothing moved for stallTimeout.
var errStalled = errors.New("bench: stalled")

// stallTimeout is how long a run may go without a publish or a delivery
// before it is given up (a variable for tests).
var stallTimeout = 10 * time.Second

// limitsFor names the relay limits behind an Error code: what to raise
// when the relay sends it to a bench client.
var limitsFor = map[wire.Code][]wire.LimitKey{
	wire.CodeRateLimited:     {wire.LimitByteRate, wire.LimitFrameRate},
	wire.CodeResync:          {wire.LimitPendingEntries, wire.LimitSendQueue},
	wire.CodeQueueFull:       {wire.LimitSendQueue},
	wire.CodeBadEntry:        {wire.LimitMaxEntrySize},
	wire.CodeFrameTooLarge:   {wire.LimitMaxFrameSize},
	wire.CodeRelayFull:       {wire.LimitMaxConnections},
	wire.CodeIdle:            {wire.LimitIdleTimeoutMilli},
	wire.CodeTooManyChannels: {wire.LimitMaxChannels},
}

// advice says what to change after a run that failed with err, against
// a relay that advertised limits: the relay limits to raise (with their
// values now), or where to look.
func advice(err error, limits []wire.Limit, ignored bool) string {
	var re *wirepeer.RemoteError
	if errors.As(err, &re) {
		if keys := limitsFor[re.Frame.Code]; len(keys) > 0 {
			var names []string
			for _, k := range keys {
				names = append(names, describeLimit(k, limits))
			}
			s := "raise the relay's " + strings.Join(names, " or ") + " (server.limits in its configuration)"
			if re.Frame.Code == wire.CodeRateLimited && ignored {
				s += ", or drop --ignore-limits so that the bench keeps within them"
			}
			if re.Frame.Code == wire.CodeResync {
				s += ", or lower --sub or --window"
			}
			return s
		}
	}
	if errors.Is(err, errStalled) {
		return "the relay stopped delivering; see its log"
	}
	return ""
}

// describeLimit writes a limit's configuration key and its advertised
// value, e.g. "byte_rate (now 8MiB)".
func describeLimit(k wire.LimitKey, limits []wire.Limit) string {
	for _, l := range relay.Limits() {
		if l.Wire != k {
			continue
		}
		v := limitOf(limits, k)
		if v == 0 {
			return l.Key
		}
		n := int64(v)
		if l.Unit == relay.Duration {
			n = int64(time.Duration(v) * time.Millisecond)
		}
		return fmt.Sprintf("%s (now %s)", l.Key, l.Unit.Format(n))
	}
	return fmt.Sprintf("limit %d", k)
}
