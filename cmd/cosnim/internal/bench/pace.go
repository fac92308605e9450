package bench

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/cosnim/relays/wire"
)

// paceShare is the part of the relay's advertised frame and byte rates a
// paced client uses: the rest covers its pongs and the relay's reads,
// which may bunch what was spread.
const paceShare = 0.9

// limitPacer keeps one connection's sends within the frame and byte rates its
// relay advertised in Welcome, which closes a connection past them. nil
// paces nothing (the limits were not advertised, or --ignore-limits).
type limitPacer struct {
	frames, bytes *rate.Limiter
}

// newLimitPacer returns the pacer for limits; nil when there is none to keep.
func newLimitPacer(limits []wire.Limit) *limitPacer {
	fr, br := limitOf(limits, wire.LimitFrameRate), limitOf(limits, wire.LimitByteRate)
	if fr == 0 && br == 0 {
		return nil
	}
	p := &limitPacer{frames: rate.NewLimiter(rate.Inf, 0), bytes: rate.NewLimiter(rate.Inf, 0)}
	if fr > 0 {
		r := max(paceShare*float64(fr), 1)
		p.frames = rate.NewLimiter(rate.Limit(r), max(int(r/10), 1))
	}
	if br > 0 {
		r := max(paceShare*float64(br), 1)
		p.bytes = rate.NewLimiter(rate.Limit(r), max(int(r/10), 1))
	}
	return p
}

// wait blocks until frames frames of n bytes in all may leave.
func (p *limitPacer) wait(ctx context.Context, frames, n int) error {
	if p == nil {
		return nil
	}
	if err := waitN(ctx, p.frames, frames); err != nil {
		return err
	}
	return waitN(ctx, p.bytes, n)
}

// allow reports whether one frame of n bytes may leave now, taking its
// tokens if so.
func (p *limitPacer) allow(n int) bool {
	if p == nil {
		return true
	}
	now := time.Now()
	if n > p.bytes.Burst() && p.bytes.Limit() != rate.Inf {
		n = p.bytes.Burst() // more than a burst: let it through at a full bucket
	}
	r := p.bytes.ReserveN(now, n)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false
	}
	if !p.frames.AllowN(now, 1) {
		r.CancelAt(now)
		return false
	}
	return true
}

// waitN takes n tokens from l, a burst at a time.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	if l.Limit() == rate.Inf {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// fitWindow returns o with its Window cut so that what a publisher may
// have in flight (a window and a batch) never overflows what the relay
// holds for a slow member (pending_entries), which it would drop, telling
// the member to resync, unless IgnoreLimits.
func (o Options) fitWindow(limits []wire.Limit) Options {
	p := int(min(limitOf(limits, wire.LimitPendingEntries), 1<<30))
	if !o.IgnoreLimits && p > 0 && o.Window+o.Batch > p {
		o.Window = max(p-o.Batch, o.Batch)
	}
	return o
}

// limitOf is the value of key among limits; 0 when not advertised.
func limitOf(limits []wire.Limit, key wire.LimitKey) uint64 {
	for _, l := range limits {
		if l.Key == key {
			return l.Value
		}
	}
	return 0
}
