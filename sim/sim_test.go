package sim

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/relay"
)

var (
	seeds   = flag.Int("sim.seeds", 40, "generated scenarios TestSeedsConverge runs")
	rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/scenarios")
)

func TestSeedsConverge(t *testing.T) {
	for seed := uint64(1); seed <= uint64(*seeds); seed++ {
		res := Run(Generate(seed), Options{})
		if len(res.Violations) > 0 || !res.Converged {
			t.Errorf("seed %d: converged=%v violations %q\n  replay: %s", seed, res.Converged, res.Violations, res.ReplayCommand)
		}
	}
}

func TestSameSeedSameRun(t *testing.T) {
	ignoreWall := cmpopts.IgnoreFields(Result{}, "WallSeconds", "EventsPerWallSec")
	a := Run(Generate(7), Options{})
	b := Run(Generate(7), Options{})
	if diff := cmp.Diff(a, b, ignoreWall); diff != "" {
		t.Fatalf("two runs of seed 7 differ (-first +second):\n%s", diff)
	}
	if a.Faults == 0 || a.Announced == 0 {
		t.Fatalf("seed 7 ran %d faults and %d announces; the test needs both", a.Faults, a.Announced)
	}
	c := Run(Generate(8), Options{})
	if c.TraceSHA256 == a.TraceSHA256 {
		t.Fatal("seeds 7 and 8 gave the same trace")
	}
}

// The harness must be able to fail: with catch-up broken on purpose it has
// to report violations and a command that replays them.
func TestFindsBrokenCatchUp(t *testing.T) {
	for _, fp := range []string{relay.FailEmptySyncReply, client.FailNoSyncOnJoin} {
		failed := 0
		for seed := uint64(1); seed <= 5; seed++ {
			sc := Generate(seed)
			sc.Failpoints = []string{fp}
			res := Run(sc, Options{})
			if len(res.Violations) == 0 {
				continue
			}
			failed++
			if !strings.Contains(res.ReplayCommand, "--seed ") || !strings.Contains(res.ReplayCommand, fp) {
				t.Errorf("%s seed %d: replay command %q does not name the seed and failpoint", fp, seed, res.ReplayCommand)
			}
			again := Run(sc, Options{})
			if again.TraceSHA256 != res.TraceSHA256 || len(again.Violations) != len(res.Violations) {
				t.Errorf("%s seed %d: replaying gave another run", fp, seed)
			}
		}
		if failed == 0 {
			t.Errorf("with %s on, no seed of 1..5 failed: the checker misses broken catch-up", fp)
		}
	}
}

func TestForgedEntriesRefused(t *testing.T) {
	sc := Generate(3)
	sc.Forger = true
	res := Run(sc, Options{})
	if len(res.Violations) > 0 {
		t.Fatalf("violations with a forger: %q", res.Violations)
	}
	if res.ForgedRefused == 0 {
		t.Fatal("no client refused a forged entry: the forger never reached them")
	}
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out strings.Builder
			if err := RunScriptFile(&out, f, *rewrite); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
		})
	}
}

func BenchmarkRun(b *testing.B) {
	var events uint64
	for i := range b.N {
		res := Run(Generate(uint64(i%20+1)), Options{})
		events += res.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// Clients joined to every channel over one connection (instances with
// several hubs) converge in each channel, through crashes and resets of
// their own and of the relay.
func TestHubSpanningClients(t *testing.T) {
	sc := Generate(11)
	sc.Channels, sc.HubSpanning = 3, 2
	sc.Faults = append(sc.Faults,
		Fault{At: sc.Chaos / 4, Kind: FaultCrashClient, Targets: []string{SpanningName(0)}, Duration: 3 * time.Second},
		Fault{At: sc.Chaos / 3, Kind: FaultReset, Targets: []string{SpanningName(1)}},
		Fault{At: sc.Chaos / 2, Kind: FaultCrashRelay, Duration: 2 * time.Second},
	)
	sortFaults(sc.Faults)
	var trace strings.Builder
	res := Run(sc, Options{Timeline: &trace})
	if len(res.Violations) > 0 || !res.Converged {
		t.Fatalf("converged=%v violations %q", res.Converged, res.Violations)
	}
	for _, name := range []string{SpanningName(0), SpanningName(1)} {
		if !strings.Contains(trace.String(), "announce "+name+" ") {
			t.Errorf("%s announced nothing: the test proves nothing about it", name)
		}
	}
	spanning := 0
	for seed := uint64(1); seed <= 40; seed++ {
		spanning += Generate(seed).HubSpanning
	}
	if spanning == 0 {
		t.Error("no generated scenario of seeds 1..40 has a hub-spanning client")
	}
}
