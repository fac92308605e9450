package sim

import (
	"strings"
	"sync"
	"testing"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/relay"
)

// selfTests proves every invariant can fire: each failpoint breaks one
// behaviour of a core, and on its seeds the simulator must report the
// named invariant with it on and nothing with it off. docs/SIMULATION.md's table
// lists the same.
var selfTests = []struct {
	failpoint string
	invariant string // the violation's prefix
	seeds     []uint64
}{
	// 1. Awareness.
	{relay.FailSkipFanout, "awareness:", []uint64{2, 12}},
	{client.FailDropDeliver, "awareness:", []uint64{2, 5}},
	{relay.FailDropAnnounce, "awareness:", []uint64{2, 5}},
	{relay.FailDropDelta, "awareness:", []uint64{4, 13}},
	{relay.FailDropSyncRange, "awareness:", []uint64{2, 13}},
	// 2. Catch-up (join, rejoin, complete flag, multi-frame, reconnect).
	{relay.FailEmptySyncReply, "catch-up:", []uint64{4, 21}},
	{client.FailNoSyncOnJoin, "catch-up:", []uint64{2, 5}},
	{relay.FailFirstFrameOnly, "catch-up:", []uint64{1, 6}},
	{relay.FailKeepComplete, "catch-up:", []uint64{18}},
	{client.FailNoBackoffReset, "catch-up:", []uint64{2, 8}},
	{relay.FailRelayWideForgot, "catch-up:", []uint64{25, 35}}, // ClassLongRunning
	// 2b. Resync: a member whose pending overflowed syncs again.
	{relay.FailNoResync, "resync:", []uint64{3, 72}},
	{client.FailIgnoreResync, "resync:", []uint64{3, 72}},
	{client.FailResyncNotSent, "resync:", []uint64{3}},
	// 2c. Report: a CaughtUp holds what the relay held as its sync began.
	{client.FailCaughtUpEarly, "report:", []uint64{1, 4}},
	// 3. Epoch.
	{relay.FailStaleEpoch, "epoch:", []uint64{2, 5}},
	{client.FailRejoinFirstOnly, "epoch:", []uint64{2, 5}},
	// 4. Isolation at the relay.
	{relay.FailEchoAnnouncer, "isolation:", []uint64{2, 5}},
	{relay.FailWrongHandle, "isolation:", []uint64{2, 5}},
	{relay.FailAcceptBadProof, "isolation:", []uint64{22, 24}},
	// 5. No fabrication.
	{relay.FailCorruptDeliver, "fabrication:", []uint64{2, 3}},
	// 6. Resource bounds.
	{relay.FailNoEvict, "boundedness:", []uint64{9, 16}},
	{relay.FailNoIdleTimeout, "boundedness:", []uint64{19}},
	// 7. Churn.
	{client.FailIdleBelowHeartbeat, "churn:", []uint64{2, 5}},
	{client.FailSyncOnAck, "churn:", []uint64{2, 5}},
	{client.FailAntiEntropyStorm, "churn:", []uint64{2, 4}},
	{relay.FailSpuriousResync, "churn:", []uint64{2, 5}},
	// Pools (seeds of ClassPool; sim/poolinv.go).
	{relay.FailNoBackbonePublish, "awareness:", []uint64{29, 91}},
	{client.FailPoolFirstHomeOnly, "awareness:", []uint64{65, 144}},
	{relay.FailNoBackboneReconcile, "catch-up:", []uint64{29, 194}},
	{client.FailIdleBelowHeartbeat, "churn:", []uint64{14, 29}},
	{client.FailCaughtUpEarly, "report:", []uint64{46, 282}},
	{client.FailPoolNoFailover, "failover:", []uint64{46, 52}},
	// Malicious relays (seeds of ClassHostileRelay; sim/hostilerelay.go):
	// resync, epoch churn, rescan, and in pools resync, incomplete Joined.
	{client.FailNoUrgentLimit, "listing:", []uint64{30, 74, 274, 432, 519}},
	{client.FailNoUrgentLimit, "found-out:", []uint64{30, 74, 274}},
	// The hostile bus publisher (sim/poolbus.go).
	{relay.FailTrustSingleComplete, "catch-up:", []uint64{1998, 2010}},
	{relay.FailBusEvictsLocal, "boundedness:", []uint64{465, 574}},
	{relay.FailUnboundedReply, "boundedness:", []uint64{744, 822}},
}

func hasViolation(vs []string, prefix string) bool {
	for _, v := range vs {
		if f := strings.Fields(v); len(f) > 1 && f[1] == prefix || strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

func TestEveryInvariantFires(t *testing.T) {
	clean := map[uint64]Result{}
	var mu sync.Mutex
	for _, st := range selfTests {
		t.Run(strings.ReplaceAll(st.failpoint, "/", "-"), func(t *testing.T) {
			t.Parallel()
			for _, seed := range st.seeds {
				sc := Generate(seed)
				sc.Failpoints = []string{st.failpoint}
				if res := Run(sc, Options{}); !hasViolation(res.Violations, st.invariant) {
					t.Errorf("seed %d (%s) with %s: no %s violation; got %q", seed, sc.Class, st.failpoint, st.invariant, res.Violations)
				}
				mu.Lock()
				res, ok := clean[seed]
				mu.Unlock()
				if !ok {
					res = Run(Generate(seed), Options{})
					mu.Lock()
					clean[seed] = res
					mu.Unlock()
				}
				if len(res.Violations) > 0 {
					t.Errorf("seed %d without %s: violations %q", seed, st.failpoint, res.Violations)
				}
			}
		})
	}
}

// The whole-run failpoints of the issue must fail the runs they are in.
func TestWholeRunFailpointsFail(t *testing.T) {
	for _, fp := range []string{relay.FailSkipFanout, client.FailDropDeliver, relay.FailDropAnnounce} {
		failed := 0
		for seed := uint64(1); seed <= 10; seed++ {
			sc := Generate(seed)
			sc.Failpoints = []string{fp}
			if len(Run(sc, Options{}).Violations) > 0 {
				failed++
			}
		}
		if failed < 9 {
			t.Errorf("with %s on, only %d of seeds 1..10 failed", fp, failed)
		}
	}
}

// make test's generated seeds (TestSeedsConverge, 1..sim.seeds) hold every
// class.
func TestSeedsCoverEveryClass(t *testing.T) {
	seen := map[Class]bool{}
	for seed := uint64(1); seed <= uint64(*seeds); seed++ {
		seen[Generate(seed).Class] = true
	}
	for _, cs := range classShares {
		if !seen[cs.class] {
			t.Errorf("no seed of 1..%d is of class %s", *seeds, cs.class)
		}
	}
}
