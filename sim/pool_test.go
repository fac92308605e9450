package sim

import (
	"math/rand/v2"
	"testing"
)

// ClassPool was carved from the default class's draw, ClassLongRunning
// from ClassAEProd's: every seed keeps the class it had before (the table
// below is the one it had) or moved to a class carved from it, and the
// pool class has about its share.
func TestPoolClassKeepsOtherSeedsClasses(t *testing.T) {
	before := []struct {
		class Class
		share int
	}{
		{ClassDefault, 35}, {ClassAEOff, 10}, {ClassAEProd, 10}, {ClassSmallCaps, 15},
		{ClassLargeRoster, 10}, {ClassProdTimings, 10}, {ClassHostile, 10},
	}
	old := func(seed uint64) Class {
		n := rand.New(rand.NewPCG(seed, 0xc1a55)).IntN(100)
		for _, cs := range before {
			if n < cs.share {
				return cs.class
			}
			n -= cs.share
		}
		return ClassDefault
	}
	const seeds = 5000
	pool := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		c := classOf(seed)
		if c == ClassPool {
			pool++
			if old(seed) != ClassDefault {
				t.Fatalf("seed %d: pool, but it was %s, not default", seed, old(seed))
			}
			continue
		}
		if c != old(seed) && carvedFromOf(c) != old(seed) {
			t.Fatalf("seed %d moved from %s to %s", seed, old(seed), c)
		}
	}
	var share int
	for _, cs := range classShares {
		if cs.class == ClassPool {
			share = cs.share
		}
	}
	if got := pool * 100 / seeds; got < share-2 || got > share+2 {
		t.Errorf("%d%% of seeds are of the pool class, want about %d%%", got, share)
	}
}

// Pool seeds draw every pool fault kind, and their runs judge awareness
// and catch-up windows while the faults fire.
func TestPoolSeedsCoverFaultsAndWindows(t *testing.T) {
	kinds := map[FaultKind]bool{}
	var awareness, catchUp uint64
	runs := 0
	for seed := uint64(1); seed <= 400; seed++ {
		if classOf(seed) != ClassPool {
			continue
		}
		sc := Generate(seed)
		for _, f := range sc.Faults {
			kinds[f.Kind] = true
		}
		if runs < 10 {
			res := Run(sc, Options{})
			if len(res.Violations) > 0 {
				t.Errorf("seed %d: %q", seed, res.Violations)
			}
			awareness += res.Checked.Awareness
			catchUp += res.Checked.CatchUp
			runs++
		}
	}
	for _, spec := range faultRegistry {
		if spec.in&inPool != 0 && !kinds[spec.kind] {
			t.Errorf("no pool seed of 1..400 draws %s", spec.kind)
		}
	}
	if awareness == 0 || catchUp == 0 {
		t.Errorf("pool runs judged %d awareness and %d catch-up windows", awareness, catchUp)
	}
}

// A pool run replays: the same scenario gives the same trace.
func TestPoolRunReplays(t *testing.T) {
	a, b := Run(Generate(29), Options{}), Run(Generate(29), Options{})
	if a.Class != ClassPool || a.TraceSHA256 != b.TraceSHA256 || a.Events != b.Events {
		t.Fatalf("class %s, traces %s and %s", a.Class, a.TraceSHA256, b.TraceSHA256)
	}
}

// carvedFromOf is the class c was carved from, "" for none.
func carvedFromOf(c Class) Class {
	for _, cs := range classShares {
		if cs.class == c {
			return cs.carvedFrom
		}
	}
	return ""
}
