package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cosnim/relays/sim"
	"github.com/cosnim/relays/sim/value"
)

// simGCPercent is the GC target of simulation runs, unless GOGC says
// otherwise: they make much short-lived garbage and hold little, and at
// 400 the collector costs a fifth less (`cosnim sim --seeds 2000`: 68 s
// wall at the default, 56 s at 400, on 2 cores).
const simGCPercent = 400

func setSimGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(simGCPercent)
	}
}

// simOpts are `cosnim sim`'s flags.
type simOpts struct {
	seed       uint64
	seeds      int
	first      uint64
	asJSON     bool
	timeline   string
	svg        string
	window     sim.SVGOptions
	scenario   string
	rewrite    bool
	failpoints []string
	parallel   int
	compare    bool
	plots      string
	ccfg       value.CompareConfig
}

func newSimCmd() *cobra.Command {
	o := &simOpts{ccfg: value.DefaultCompareConfig()}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run deterministic fault simulations of relays and clients",
		Long: `sim runs the relay and client cores on a simulated network with a virtual
clock, injects partitions, crashes, clogs, resets, replays and clock drift,
then heals and checks that every client converges to the union of what was
announced, with no loss, fabrication or leak across channels.

A run is fully determined by its seed: the same seed prints the same
trace_sha256 on any machine. A failing seed prints the command that
replays it; add --timeline to write what happened as a readable timeline.`,
		Example: `  cosnim sim --seed 42 --json
  cosnim sim --seeds 500
  cosnim sim --seed 42 --timeline run.txt
  cosnim sim --seed 42 --svg run.svg --from 15s --to 20s
  cosnim sim --scenario testdata/scenarios/relay_crash.txt
  cosnim sim --compare --plots plots/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.register(cmd.Flags())
	return cmd
}

func (o *simOpts) run(cmd *cobra.Command) error {
	setSimGC()
	out := cmd.OutOrStdout()
	if o.parallel <= 0 {
		o.parallel = runtime.GOMAXPROCS(0)
	}
	switch {
	case o.compare:
		if cmd.Flags().Changed("seed") {
			o.ccfg.Seed = o.seed
		}
		return runCompare(out, cmd.ErrOrStderr(), o.ccfg, o.parallel, o.plots, o.asJSON)
	case o.scenario != "":
		return runScript(out, o.scenario, o.rewrite)
	case cmd.Flags().Changed("seed"):
		if err := checkWindow(cmd, o.svg, o.window); err != nil {
			return err
		}
		return runOne(out, o.seed, o.failpoints, o.timeline, o.svg, o.window, o.asJSON)
	}
	return runMany(out, cmd.ErrOrStderr(), o.first, o.seeds, o.parallel, o.failpoints, o.asJSON)
}

func (o *simOpts) register(f *pflag.FlagSet) {
	f.Uint64Var(&o.seed, "seed", 0, "run the one scenario generated from this seed")
	f.IntVar(&o.seeds, "seeds", 100, "run this many generated scenarios")
	f.Uint64Var(&o.first, "first-seed", 1, "first seed of --seeds")
	f.BoolVar(&o.asJSON, "json", false, "print results as JSON")
	f.StringVar(&o.timeline, "timeline", "", "with --seed: write the readable trace to this file")
	f.StringVar(&o.svg, "svg", "", "with --seed: draw the run as an SVG timeline in this file (time axis, a lane per node, frames colored by type, faults as bands)")
	f.DurationVar(&o.window.From, "from", 0, "with --svg: draw from this virtual time on")
	f.DurationVar(&o.window.To, "to", 0, "with --svg: draw up to this virtual time (default: the end of the run)")
	f.StringVar(&o.scenario, "scenario", "", "run a scripted scenario file (testdata/scenarios/*.txt)")
	f.BoolVar(&o.rewrite, "rewrite", false, "with --scenario: rewrite the expected output in the file")
	f.StringSliceVar(&o.failpoints, "failpoint", nil, "turn on a failpoint for the whole run (self-tests), e.g. relay/empty-sync-reply")
	f.IntVar(&o.parallel, "parallel", 0, "simulations run at once (default: number of CPUs)")
	f.BoolVar(&o.compare, "compare", false, "run one seeded workload with the relay, without it, with it crashing and partitioned, and with pools of relays, and compare (the relay's value)")
	f.StringVar(&o.plots, "plots", "", "with --compare: write SVG plots of awareness latency over time into this directory")
	c := &o.ccfg
	f.IntVar(&c.Instances, "instances", c.Instances, "with --compare: long-running instances")
	f.IntVar(&c.Hubs, "hubs", c.Hubs, "with --compare: capsule hubs, all joined by every instance")
	f.DurationVar(&c.Duration, "duration", c.Duration, "with --compare: virtual time the workload runs")
	f.DurationVar(&c.WriteEvery, "write-every", c.WriteEvery, "with --compare: each instance writes a capsule this often")
	f.DurationVar(&c.Storage.VisibleWithin, "visible-within", c.Storage.VisibleWithin, "with --compare: storage listings show a write within this (eventual consistency)")
	f.DurationVar(&c.Storage.ListLatency, "list-latency", c.Storage.ListLatency, "with --compare: latency of one list query (page)")
	f.DurationVar(&c.List.ListInterval, "list-interval", c.List.ListInterval, "with --compare: listing interval without a healthy relay link")
	f.DurationVar(&c.List.HealthyInterval, "healthy-interval", c.List.HealthyInterval, "with --compare: listing interval while the relay link is healthy")
	f.DurationVar(&c.CrashEvery, "crash-every", c.CrashEvery, "with --compare: the crashing relay crashes this often")
	f.DurationVar(&c.PartitionEvery, "partition-every", c.PartitionEvery, "with --compare: instances are partitioned from the relay this often")
}

var errViolations = errors.New("invariant violations found")

// checkWindow refuses --from/--to without --svg, and an empty window.
func checkWindow(cmd *cobra.Command, svg string, w sim.SVGOptions) error {
	if svg == "" && (cmd.Flags().Changed("from") || cmd.Flags().Changed("to")) {
		return errors.New("--from and --to zoom the --svg picture; add --svg FILE")
	}
	if w.From < 0 || w.To < 0 || (w.To != 0 && w.To <= w.From) {
		return fmt.Errorf("--from %v --to %v: want 0 ≤ from < to", w.From, w.To)
	}
	return nil
}

func runOne(out io.Writer, seed uint64, failpoints []string, timeline, svg string, window sim.SVGOptions, asJSON bool) error {
	sc := sim.Generate(seed)
	sc.Failpoints = failpoints
	var opt sim.Options
	var trace, frames bytes.Buffer
	if timeline != "" || svg != "" {
		opt.Timeline = &trace
	}
	if svg != "" {
		opt.Frames = &frames
	}
	res := sim.Run(sc, opt)
	if timeline != "" {
		if err := os.WriteFile(timeline, trace.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if svg != "" {
		var pic bytes.Buffer
		window.Frames = &frames
		if err := sim.WriteSVG(&pic, bytes.NewReader(trace.Bytes()), window); err != nil {
			return err
		}
		if err := os.WriteFile(svg, pic.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printResult(out, res)
	}
	if len(res.Violations) > 0 {
		return errViolations
	}
	return nil
}

func printResult(out io.Writer, r sim.Result) {
	fmt.Fprintf(out, "seed %d: %d clients, %d channels, %d announced, %d faults\n", r.Seed, r.Clients, r.Channels, r.Announced, r.Faults)
	fmt.Fprintf(out, "  converged: %v (%.2fs after heal)\n", r.Converged, r.ConvergedAfter)
	fmt.Fprintf(out, "  %d events in %.1f virtual s, %.0f events per wall second\n", r.Events, r.VirtualSeconds, r.EventsPerWallSec)
	if r.ListingsWithoutRelay > 0 {
		fmt.Fprintf(out, "  %d storage listings, with no relay at most %d\n", r.Listings, r.ListingsWithoutRelay)
	}
	fmt.Fprintf(out, "  trace sha256 %s\n", r.TraceSHA256)
	for _, v := range r.Violations {
		fmt.Fprintf(out, "  VIOLATION %s\n", v)
	}
	if r.ReplayCommand != "" {
		fmt.Fprintf(out, "  replay: %s\n", r.ReplayCommand)
	}
}

// summary is what --seeds --json prints.
type summary struct {
	Runs             int          `json:"runs"`
	Failed           []uint64     `json:"failed_seeds"`
	ConvergeP50      float64      `json:"converge_p50_seconds"`
	ConvergeP90      float64      `json:"converge_p90_seconds"`
	ConvergeP99      float64      `json:"converge_p99_seconds"`
	ConvergeMax      float64      `json:"converge_max_seconds"`
	Events           uint64       `json:"events"`
	Messages         uint64       `json:"messages"`
	Bytes            uint64       `json:"bytes"`
	Faults           int          `json:"faults"`
	Reconnects       uint64       `json:"reconnects"`
	CatchUps         uint64       `json:"catch_ups"`
	NeedlessCatchUps uint64       `json:"needless_catch_ups"`
	ResyncLate       uint64       `json:"resync_late"`
	WallSeconds      float64      `json:"wall_seconds"`
	EventsPerWallSec float64      `json:"events_per_wall_second"`
	Failures         []sim.Result `json:"failures,omitempty"`
	// Classes breaks the runs down by seed class.
	Classes map[sim.Class]*classSummary `json:"classes"`
}

// classSummary is one seed class's share of a --seeds run.
type classSummary struct {
	Runs        int     `json:"runs"`
	Failed      int     `json:"failed"`
	Events      uint64  `json:"events"`
	ConvergeP50 float64 `json:"converge_p50_seconds"`
	ConvergeMax float64 `json:"converge_max_seconds"`
	// Awareness and CatchUp count the windows judged (sim.Checks).
	Awareness uint64 `json:"awareness_windows"`
	CatchUp   uint64 `json:"catch_up_windows"`
	Failover  uint64 `json:"failover_checks,omitempty"`
	conv      []float64
}

func runMany(out, progress io.Writer, first uint64, n, parallel int, failpoints []string, asJSON bool) error {
	start := time.Now()
	s := summarize(runSeeds(progress, first, n, parallel, failpoints))
	s.WallSeconds = time.Since(start).Seconds()
	s.EventsPerWallSec = float64(s.Events) / s.WallSeconds
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printSummary(out, s)
	}
	if len(s.Failed) > 0 {
		return fmt.Errorf("%d of %d seeds: %w", len(s.Failed), n, errViolations)
	}
	return nil
}

// runSeeds runs n seeds from first on parallel workers, showing progress
// on a terminal (or a line per tenth of the run in a log).
func runSeeds(progress io.Writer, first uint64, n, parallel int, failpoints []string) []sim.Result {
	tty := isTerminal(progress)
	results := make([]sim.Result, n)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sc := sim.Generate(first + uint64(i))
				sc.Failpoints = failpoints
				results[i] = sim.Run(sc, sim.Options{})
				mu.Lock()
				done++
				switch {
				case tty && (done%10 == 0 || done == n):
					fmt.Fprintf(progress, "\rsim: %d/%d seeds", done, n)
				case !tty && (done*10/n != (done-1)*10/n || done == n):
					fmt.Fprintf(progress, "sim: %d/%d seeds\n", done, n)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if tty {
		fmt.Fprintln(progress)
	}
	return results
}

// summarize totals results, overall and per class.
func summarize(results []sim.Result) *summary {
	s := &summary{Runs: len(results), Classes: map[sim.Class]*classSummary{}}
	var conv []float64
	for _, r := range results {
		cs := s.Classes[r.Class]
		if cs == nil {
			cs = &classSummary{}
			s.Classes[r.Class] = cs
		}
		cs.Runs++
		cs.Events += r.Events
		cs.Awareness += r.Checked.Awareness
		cs.CatchUp += r.Checked.CatchUp
		cs.Failover += r.Checked.Failover
		s.Events += r.Events
		s.Messages += r.Messages
		s.Bytes += r.Bytes
		s.Faults += r.Faults
		s.Reconnects += r.Reconnects
		s.CatchUps += r.CatchUps
		s.NeedlessCatchUps += r.NeedlessCatchUps
		s.ResyncLate += r.ResyncLate
		if r.Converged {
			cs.conv = append(cs.conv, r.ConvergedAfter)
			conv = append(conv, r.ConvergedAfter)
		}
		if len(r.Violations) > 0 {
			cs.Failed++
			s.Failed = append(s.Failed, r.Seed)
			s.Failures = append(s.Failures, r)
		}
	}
	for _, cs := range s.Classes { // sorted: each class alone
		slices.Sort(cs.conv)
		cs.ConvergeP50 = pct(cs.conv, 50)
		if len(cs.conv) > 0 {
			cs.ConvergeMax = cs.conv[len(cs.conv)-1]
		}
	}
	slices.Sort(conv)
	s.ConvergeP50, s.ConvergeP90, s.ConvergeP99 = pct(conv, 50), pct(conv, 90), pct(conv, 99)
	if len(conv) > 0 {
		s.ConvergeMax = conv[len(conv)-1]
	}
	return s
}

func printSummary(out io.Writer, s *summary) {
	fmt.Fprintf(out, "%-28s %s\n", "runs", fmt.Sprint(s.Runs))
	fmt.Fprintf(out, "%-28s %d\n", "failed", len(s.Failed))
	fmt.Fprintf(out, "%-28s p50 %.2fs  p90 %.2fs  p99 %.2fs  max %.2fs\n", "convergence after heal", s.ConvergeP50, s.ConvergeP90, s.ConvergeP99, s.ConvergeMax)
	fmt.Fprintf(out, "%-28s %d\n", "faults injected", s.Faults)
	fmt.Fprintf(out, "%-28s %d reconnects, %d catch-ups, %d needless, %d resyncs late\n", "churn", s.Reconnects, s.CatchUps, s.NeedlessCatchUps, s.ResyncLate)
	fmt.Fprintf(out, "%-28s %d messages, %d bytes\n", "network", s.Messages, s.Bytes)
	fmt.Fprintf(out, "%-28s %d events, %.0f per wall second, %.1fs wall\n", "simulator", s.Events, s.EventsPerWallSec, s.WallSeconds)
	for _, c := range slices.Sorted(maps.Keys(s.Classes)) {
		cs := s.Classes[c]
		fmt.Fprintf(out, "%-28s %d runs, %d failed, %d events, convergence p50 %.2fs max %.2fs, %d awareness and %d catch-up windows",
			"class "+string(c), cs.Runs, cs.Failed, cs.Events, cs.ConvergeP50, cs.ConvergeMax, cs.Awareness, cs.CatchUp)
		if cs.Failover > 0 {
			fmt.Fprintf(out, ", %d failover checks", cs.Failover)
		}
		fmt.Fprintln(out)
	}
	for _, r := range s.Failures {
		fmt.Fprintf(out, "\nFAILED seed %d: %d violations, first: %s\n  replay: %s\n", r.Seed, len(r.Violations), r.Violations[0], r.ReplayCommand)
	}
}

func pct(sorted []float64, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func runCompare(out, progress io.Writer, cfg value.CompareConfig, parallel int, plots string, asJSON bool) error {
	done := 0
	c, err := value.Compare(cfg, parallel, func(v value.Variant) {
		done++
		fmt.Fprintf(progress, "sim compare: %d/%d runs (%s done)\n", done, len(value.Variants), v)
	})
	if err != nil {
		return err
	}
	var written []string
	if plots != "" {
		if written, err = c.WritePlots(plots); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(c); err != nil {
			return err
		}
	} else {
		c.WriteTable(out)
		for _, p := range written {
			fmt.Fprintf(out, "plot: %s\n", p)
		}
	}
	if v := c.Violations(); len(v) > 0 {
		return fmt.Errorf("%d violations: %w", len(v), errViolations)
	}
	if missed := c.MissedTargets(cfg); len(missed) > 0 {
		for _, m := range missed {
			fmt.Fprintf(progress, "TARGET MISSED %s\n", m)
		}
		return fmt.Errorf("%d relay-value targets missed: %w", len(missed), errViolations)
	}
	return nil
}

func runScript(out io.Writer, path string, rewrite bool) error {
	return sim.RunScriptFile(out, path, rewrite)
}
