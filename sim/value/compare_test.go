package value

import (
	"bytes"
	"encoding/xml"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRelayValueTargets asserts issue 7's targets on the default workload
// (50 instances, 5 hubs, a capsule per instance per minute, listings
// eventual within 1s) over a fixed seed set, with the workload shortened to
// 40 virtual minutes (three relay crashes) to keep the test near 10s wall.
func TestRelayValueTargets(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cfg := DefaultCompareConfig()
		cfg.Seed = seed
		cfg.Duration = 40 * time.Minute
		c, err := Compare(cfg, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range c.MissedTargets(cfg) {
			t.Errorf("seed %d: %s", seed, m)
		}
		// Three crashes in 40 minutes, one each CrashEvery (10m) after the
		// first period.
		if c.WithRelayCrashing.Faults < 3 {
			t.Errorf("seed %d: relay crashed %d times, want 3", seed, c.WithRelayCrashing.Faults)
		}
		if c.PoolCrashing.Faults < 3 {
			t.Errorf("seed %d: pool relays crashed %d times, want 3", seed, c.PoolCrashing.Faults)
		}
		// Pools spread: every variant's members hear through more than
		// one relay (the instances cut from one relay, through the others).
		for _, m := range c.Measures()[4:] {
			if m.RelaysDelivering < 2 {
				t.Errorf("seed %d: %s: %d relays delivered entries, want at least 2", seed, m.Variant, m.RelaysDelivering)
			}
		}
	}
}

// MissedTargets reports a variant that misses its targets.
func TestMissedTargetsReports(t *testing.T) {
	var c Comparison
	c.WithoutRelay.AwarenessP99, c.WithoutRelay.AwarenessMax, c.WithoutRelay.ListQueriesPerInstanceHour, c.WithoutRelay.CatchUp = 60, 70, 60, 10
	c.WithRelay.AwarenessP99, c.WithRelay.ListQueriesPerInstanceHour, c.WithRelay.CatchUp = 0.1, 1, 1
	c.WithRelayCrashing.Faults = 1
	c.PoolPartitioned.AwarenessP99, c.PoolPartitioned.AwarenessMax = 0.002, 0.003
	c.PoolCrashing.Faults, c.PoolCrashing.AwarenessP99 = 1, 0.002
	c.PoolHealthyHomes1.RelayBytes, c.PoolHealthyHomes2.RelayBytes = 1000, 2200
	cfg := DefaultCompareConfig()
	if m := c.MissedTargets(cfg); len(m) != 0 {
		t.Fatalf("targets met, got misses %q", m)
	}
	c.WithRelayPartitioned.AwarenessMax = 70 + 45 + 66 + 1
	if m := c.MissedTargets(cfg); len(m) != 1 || !strings.HasPrefix(m[0], string(WithRelayPartitioned)) {
		t.Fatalf("partitioned awareness max worse than listing alone: got misses %q, want one of %s", m, WithRelayPartitioned)
	}
	c.WithRelayPartitioned.AwarenessMax = 0
	for _, tc := range []struct {
		v   Variant
		set func(c *Comparison)
	}{
		{PoolPartitioned, func(c *Comparison) { c.PoolPartitioned.AwarenessP99 = 0.1 }},
		{PoolPartitioned, func(c *Comparison) { c.PoolPartitioned.AwarenessMax = 2 }},
		{PoolPartitioned, func(c *Comparison) { c.PoolPartitioned.ListQueriesPerInstanceHour = 1.21 }},
		{PoolCrashing, func(c *Comparison) { c.PoolCrashing.Faults = 0 }},
		{PoolCrashing, func(c *Comparison) { c.PoolCrashing.AwarenessP99 = 0.1 }},
		{PoolCrashing, func(c *Comparison) { c.PoolCrashing.ListQueriesPerInstanceHour = 1.21 }},
		{PoolHealthyHomes2, func(c *Comparison) { c.PoolHealthyHomes2.RelayBytes = 2201 }},
	} {
		d := c
		tc.set(&d)
		if m := d.MissedTargets(cfg); len(m) != 1 || !strings.HasPrefix(m[0], string(tc.v)+":") {
			t.Errorf("got misses %q, want one of %s", m, tc.v)
		}
	}
}

func smallCompare() CompareConfig {
	cfg := DefaultCompareConfig()
	cfg.Instances, cfg.Hubs, cfg.Duration, cfg.Commands = 8, 2, 12*time.Minute, 2
	cfg.PartitionInstances = 2
	return cfg
}

func TestRunVariantIsDeterministic(t *testing.T) {
	for _, v := range Variants {
		a, b := RunVariant(smallCompare(), v), RunVariant(smallCompare(), v)
		a.WallSeconds, b.WallSeconds = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs differ:\n%+v\n%+v", v, a, b)
		}
	}
}

func TestWithoutRelayStillLearnsEverything(t *testing.T) {
	cfg := smallCompare()
	cfg.List.ListInterval = 10 * time.Second
	m := RunVariant(cfg, WithoutRelay)
	if m.MissedCapsules != 0 || m.LearnedViaRelay != 0 || m.BytesSentPerInstance != 0 {
		t.Fatalf("got %d missed, %.2f via relay, %.0f bytes sent; want 0, 0, 0", m.MissedCapsules, m.LearnedViaRelay, m.BytesSentPerInstance)
	}
	if m.AwarenessMax > 13 {
		t.Errorf("awareness max %.1fs with a 10s listing interval, want under 13s (interval+10%%, visibility, pages)", m.AwarenessMax)
	}
}

func TestCompareConfigValidate(t *testing.T) {
	bad := []CompareConfig{
		{Instances: 1},
		{CrashEvery: time.Second, CrashDown: 2 * time.Second},
		{Instances: 5, PartitionInstances: 6},
	}
	for _, c := range bad {
		if _, err := Compare(c, 1, nil); err == nil {
			t.Errorf("Compare(%+v) accepted", c)
		}
	}
}

func TestComparisonReport(t *testing.T) {
	c, err := Compare(smallCompare(), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tab bytes.Buffer
	c.WriteTable(&tab)
	for _, want := range []string{"with_relay", "without_relay", "awareness p99", "list queries /instance/hour", "missed capsules"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
	dir := t.TempDir()
	paths, err := c.WritePlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(Variants) {
		t.Fatalf("wrote %d plots, want %d", len(paths), len(Variants))
	}
	var pic bytes.Buffer
	if err := c.WithRelayCrashing.WritePlot(&pic); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pic.String(), "relay crash at 10m0s") {
		t.Error("plot of the crashing relay does not mark the crash")
	}
	d := xml.NewDecoder(&pic)
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("plot is not well-formed XML: %v", err)
		}
	}
}
