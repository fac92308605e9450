package value

import (
	"fmt"
	"time"

	"github.com/cosnim/relays/relay"
)

// The relay-value targets (issue 7), per variant, checked by
// Comparison.MissedTargets, TestRelayValueTargets and `cosnim sim
// --compare` (which exits non-zero when one is missed):
//
//   - every variant: no capsule missed after the workload, no violation,
//     the same capsules as with_relay (one workload);
//   - with_relay: p99 awareness at least 100x lower and at least 10x fewer
//     list queries per instance-hour than without_relay, and commands
//     catch up faster;
//   - without_relay: everything is learned by listing alone (nothing via a
//     relay, nothing sent to one);
//   - with_relay_crashing: the relay crashed, and awareness p50, p99 and
//     max are no worse than listing alone;
//   - with_relay_partitioned: awareness max no worse than listing alone's
//     plus the time a partitioned instance takes to notice its link is
//     dead (the relay's idle timeout) and one listing interval (with its
//     10% jitter): it then lists. (Its p99 is not a target: with few
//     instances it is the max.)
//   - pool_partitioned: p99 awareness under poolP99, max under
//     poolPartitionedMax; pool_crashing: a relay crashed, p99 under
//     poolP99; both: list queries per instance-hour at most poolListRatio
//     times with_relay's (the healthy single relay);
//   - pool_healthy_homes2: relay bytes at most homesBytesRatio times
//     pool_healthy_homes1's.

// The pool targets.
const (
	poolP99            = 100 * time.Millisecond
	poolPartitionedMax = 2 * time.Second
	poolListRatio      = 1.2
	homesBytesRatio    = 2.2
)

// MissedTargets lists every target a variant missed, with the figures.
func (c *Comparison) MissedTargets(cfg CompareConfig) []string {
	cfg = cfg.WithDefaults()
	notice := relay.Config{}.WithDefaults().IdleTimeout + cfg.List.ListInterval*11/10
	var out []string
	miss := func(v Variant, format string, args ...any) {
		out = append(out, string(v)+": "+fmt.Sprintf(format, args...))
	}
	with, without, crash, part := &c.WithRelay, &c.WithoutRelay, &c.WithRelayCrashing, &c.WithRelayPartitioned
	for _, m := range c.Measures() {
		if m.MissedCapsules != 0 || len(m.Violations) != 0 {
			miss(m.Variant, "%d missed capsules, %d violations; want none", m.MissedCapsules, len(m.Violations))
		}
		if m.Capsules != with.Capsules {
			miss(m.Variant, "%d capsules, want %d as with the relay (same workload)", m.Capsules, with.Capsules)
		}
	}
	if with.AwarenessP99*100 > without.AwarenessP99 {
		miss(WithRelay, "p99 awareness %.4fs, %.1fs without a relay: want at least 100x lower", with.AwarenessP99, without.AwarenessP99)
	}
	if with.ListQueriesPerInstanceHour*10 > without.ListQueriesPerInstanceHour {
		miss(WithRelay, "%.1f list queries per instance-hour, %.1f without a relay: want at least 10x fewer", with.ListQueriesPerInstanceHour, without.ListQueriesPerInstanceHour)
	}
	if with.CatchUp >= without.CatchUp {
		miss(WithRelay, "command catch-up %.3fs, %.3fs without a relay: want faster", with.CatchUp, without.CatchUp)
	}
	if without.LearnedViaRelay != 0 || without.BytesSentPerInstance != 0 {
		miss(WithoutRelay, "%.2f learned via a relay, %.0f bytes sent to one: want 0, 0", without.LearnedViaRelay, without.BytesSentPerInstance)
	}
	if crash.Faults == 0 {
		miss(WithRelayCrashing, "the relay never crashed")
	}
	if crash.AwarenessP50 > without.AwarenessP50 || crash.AwarenessP99 > without.AwarenessP99 || crash.AwarenessMax > without.AwarenessMax {
		miss(WithRelayCrashing, "awareness p50/p99/max %.3f/%.3f/%.3fs, listing alone %.3f/%.3f/%.3fs: want no worse",
			crash.AwarenessP50, crash.AwarenessP99, crash.AwarenessMax, without.AwarenessP50, without.AwarenessP99, without.AwarenessMax)
	}
	if part.AwarenessMax > without.AwarenessMax+notice.Seconds() {
		miss(WithRelayPartitioned, "awareness max %.3fs, listing alone %.3fs: want within %v more",
			part.AwarenessMax, without.AwarenessMax, notice)
	}
	pp, pc := &c.PoolPartitioned, &c.PoolCrashing
	if pp.AwarenessP99 >= poolP99.Seconds() || pp.AwarenessMax >= poolPartitionedMax.Seconds() {
		miss(PoolPartitioned, "awareness p99/max %.4f/%.3fs: want under %v/%v", pp.AwarenessP99, pp.AwarenessMax, poolP99, poolPartitionedMax)
	}
	if pc.Faults == 0 {
		miss(PoolCrashing, "no relay crashed")
	}
	if pc.AwarenessP99 >= poolP99.Seconds() {
		miss(PoolCrashing, "awareness p99 %.4fs: want under %v", pc.AwarenessP99, poolP99)
	}
	for _, vm := range []struct {
		v Variant
		m *Measure
	}{{PoolPartitioned, pp}, {PoolCrashing, pc}} {
		v, m := vm.v, vm.m
		if m.ListQueriesPerInstanceHour > poolListRatio*with.ListQueriesPerInstanceHour {
			miss(v, "%.1f list queries per instance-hour, %.1f with a healthy relay: want at most %.1fx", m.ListQueriesPerInstanceHour, with.ListQueriesPerInstanceHour, poolListRatio)
		}
	}
	h1, h2 := &c.PoolHealthyHomes1, &c.PoolHealthyHomes2
	if float64(h2.RelayBytes) > homesBytesRatio*float64(h1.RelayBytes) {
		miss(PoolHealthyHomes2, "relay bytes %d, %d with homes 1: want at most %.1fx", h2.RelayBytes, h1.RelayBytes, homesBytesRatio)
	}
	return out
}
