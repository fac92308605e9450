package sim

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
		with, without, crash := c.WithRelay, c.WithoutRelay, c.WithRelayCrashing
		for _, m := range c.Measures() {
			if m.MissedCapsules != 0 || len(m.Violations) != 0 {
				t.Errorf("seed %d %s: %d missed capsules, violations %v; want none", seed, m.Variant, m.MissedCapsules, m.Violations)
			}
			if m.Capsules != with.Capsules {
				t.Errorf("seed %d %s: %d capsules, want %d as with the relay (same workload)", seed, m.Variant, m.Capsules, with.Capsules)
			}
		}
		if with.AwarenessP99*100 > without.AwarenessP99 {
			t.Errorf("seed %d: p99 awareness %.4fs with a relay, %.1fs without: want at least 100x lower", seed, with.AwarenessP99, without.AwarenessP99)
		}
		if with.ListQueriesPerInstanceHour*10 > without.ListQueriesPerInstanceHour {
			t.Errorf("seed %d: %.1f list queries per instance-hour with a relay, %.1f without: want at least 10x fewer", seed, with.ListQueriesPerInstanceHour, without.ListQueriesPerInstanceHour)
		}
		if crash.Faults < 3 {
			t.Errorf("seed %d: relay crashed %d times, want 3", seed, crash.Faults)
		}
		if crash.AwarenessP50 > without.AwarenessP50 || crash.AwarenessP99 > without.AwarenessP99 || crash.AwarenessMax > without.AwarenessMax {
			t.Errorf("seed %d: awareness with a crashing relay p50/p99/max %.3f/%.3f/%.3fs, listing alone %.3f/%.3f/%.3fs: want no worse",
				seed, crash.AwarenessP50, crash.AwarenessP99, crash.AwarenessMax, without.AwarenessP50, without.AwarenessP99, without.AwarenessMax)
		}
		if with.CatchUp >= without.CatchUp {
			t.Errorf("seed %d: command catch-up %.3fs with a relay, %.3fs without: want faster", seed, with.CatchUp, without.CatchUp)
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
