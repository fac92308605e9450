package bench

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/wire"
)

// Result is the outcome of a run. JSON names are stable: scripts read them.
type Result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	TLS      bool   `json:"tls"`
	Pub      int    `json:"pub,omitempty"`
	Sub      int    `json:"sub,omitempty"`
	Channels int    `json:"channels,omitempty"`
	Conns    int    `json:"conns"`
	Size     int    `json:"size"`
	Batch    int    `json:"batch,omitempty"`

	Published         uint64  `json:"published"`
	Delivered         uint64  `json:"delivered"`
	Expected          uint64  `json:"expected,omitempty"`
	Seconds           float64 `json:"seconds"`
	DeliveredPerSec   float64 `json:"delivered_per_sec"`
	PublishedPerSec   float64 `json:"published_per_sec"`
	PerSubMin         float64 `json:"per_sub_per_sec_min,omitempty"`
	PerSubAvg         float64 `json:"per_sub_per_sec_avg,omitempty"`
	PerSubMax         float64 `json:"per_sub_per_sec_max,omitempty"`
	BytesPerSec       float64 `json:"bytes_per_sec"`
	TargetRate        int     `json:"target_rate,omitempty"`
	LatencyP50us      float64 `json:"latency_p50_us"`
	LatencyP90us      float64 `json:"latency_p90_us"`
	LatencyP99us      float64 `json:"latency_p99_us"`
	LatencyP999us     float64 `json:"latency_p999_us"`
	LatencyMaxUs      float64 `json:"latency_max_us"`
	LatencySamples    uint64  `json:"latency_samples"`
	Errors            uint64  `json:"errors"`
	FirstError        string  `json:"first_error,omitempty"`
	BytesPerConn      float64 `json:"bytes_per_conn,omitempty"`
	RSSPerConn        float64 `json:"rss_per_conn,omitempty"`
	RSSPerConnAfterGC float64 `json:"rss_per_conn_after_gc,omitempty"` // idle: RSS growth ScavengeWait after a GC
	ScavengeSeconds   float64 `json:"scavenge_seconds,omitempty"`
	SettleSeconds     float64 `json:"settle_seconds,omitempty"` // idle: wait after the joins before the memory reading
	ResyncSeconds     float64 `json:"resync_seconds,omitempty"`
	Resynced          int     `json:"resynced,omitempty"`
	Resumed           int     `json:"tls_resumed,omitempty"`
	Retries           uint64  `json:"retries,omitempty"`
	RelayCPUSeconds   float64 `json:"relay_cpu_seconds"`
	RelayCPUPercent   float64 `json:"relay_cpu_percent"`
	RelayPeakRSS      int64   `json:"relay_peak_rss_bytes"`
	RelayHeapStack    int64   `json:"relay_heap_stack_bytes"`
	UsageIncludesSelf bool    `json:"usage_includes_bench"`
	// BenchCPUSeconds is the bench process's own CPU over the whole run
	// (connecting included); the relay's when in-process.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	// Complete is false when the run did not do what it was asked
	// (Delivered under Expected, or an error); Advice then says what to
	// change, when the bench knows.
	Complete bool   `json:"complete"`
	Advice   string `json:"advice,omitempty"`

	cause  error        // the first error, for Advice
	limits []wire.Limit // what the relay advertised, for Advice
}

// conclude sets Complete and Advice once the scenario has filled r.
func (r *Result) conclude(ignoredLimits bool) {
	switch r.Scenario {
	case ScenarioFanout, ScenarioChannels:
		r.Complete = r.Delivered >= r.Expected && r.Errors == 0
	case ScenarioStorm:
		r.Complete = r.Resynced == r.Conns && r.Errors == 0
	default:
		r.Complete = r.Errors == 0
	}
	if !r.Complete {
		r.Advice = advice(r.cause, r.limits, ignoredLimits)
	}
}

// Shortfall says, in one line, how a run that is not Complete fell short.
func (r *Result) Shortfall() string {
	var s string
	switch r.Scenario {
	case ScenarioFanout, ScenarioChannels:
		s = fmt.Sprintf("delivered %d of %d entries", r.Delivered, r.Expected)
		if r.Expected > 0 {
			s += fmt.Sprintf(" (%.1f%%)", 100*float64(r.Delivered)/float64(r.Expected))
		}
	case ScenarioStorm:
		s = fmt.Sprintf("%d of %d clients resynced", r.Resynced, r.Conns)
	default:
		s = fmt.Sprintf("%d errors", r.Errors)
	}
	if r.FirstError != "" {
		s += ": " + r.FirstError
	}
	if r.Advice != "" {
		s += "; " + r.Advice
	}
	return s
}

// setUsage fills the relay resource fields from two samples taken around
// the measured interval.
func (r *Result) setUsage(t Target, before, after Usage, ok bool, elapsed time.Duration) {
	r.Target = t.Kind()
	r.UsageIncludesSelf = t.Kind() == "in-process"
	if !ok {
		return
	}
	cpu := after.CPU - before.CPU
	r.RelayCPUSeconds = cpu.Seconds()
	if elapsed > 0 {
		r.RelayCPUPercent = 100 * cpu.Seconds() / elapsed.Seconds()
	}
	r.RelayPeakRSS = after.PeakRSS
	r.RelayHeapStack = after.HeapStack
}

// errs collects errors from many goroutines, keeping the first.
type errs struct {
	n     atomic.Uint64
	first atomic.Pointer[error]
}

func (e *errs) add(err error) {
	if err == nil {
		return
	}
	e.n.Add(1)
	e.first.CompareAndSwap(nil, &err)
}

// err is the first error added; nil if none was.
func (e *errs) err() error {
	if p := e.first.Load(); p != nil {
		return *p
	}
	return nil
}

func (e *errs) fill(r *Result) {
	r.Errors = e.n.Load()
	if err := e.err(); err != nil {
		r.FirstError = err.Error()
	}
}

// WriteText writes a human-readable report.
func (r *Result) WriteText(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	mode := "plaintext"
	if r.TLS {
		mode = "TLS"
	}
	if !r.Complete {
		p("INCOMPLETE: %s", r.Shortfall())
	}
	p("scenario %s, server %s, %s, %d connections, %d-byte entries", r.Scenario, r.Target, mode, r.Conns, r.Size)
	switch r.Scenario {
	case ScenarioFanout, ScenarioChannels:
		p("  published  %d entries (%s/s)", r.Published, si(r.PublishedPerSec))
		p("  delivered  %d entries in %.3fs: %s entries/s, %s/s", r.Delivered, r.Seconds, si(r.DeliveredPerSec), HumanBytes(r.BytesPerSec))
		if r.PerSubAvg > 0 {
			p("  per subscriber: min %s, avg %s, max %s entries/s", si(r.PerSubMin), si(r.PerSubAvg), si(r.PerSubMax))
		}
		p("  latency    p50 %.0fµs  p90 %.0fµs  p99 %.0fµs  p99.9 %.0fµs  max %.0fµs  (%d entries)",
			r.LatencyP50us, r.LatencyP90us, r.LatencyP99us, r.LatencyP999us, r.LatencyMaxUs, r.LatencySamples)
	case ScenarioStorm:
		p("  resynced   %d/%d clients in %.3fs after the restart (%d TLS sessions resumed, %d retries)", r.Resynced, r.Conns, r.ResyncSeconds, r.Resumed, r.Retries)
	case ScenarioIdle:
		p("  memory     %s per joined idle connection (heap+stacks), %s RSS per connection %.1fs after the joins, %s after a GC and %v",
			HumanBytes(r.BytesPerConn), HumanBytes(r.RSSPerConn), r.SettleSeconds, HumanBytes(r.RSSPerConnAfterGC), time.Duration(r.ScavengeSeconds*float64(time.Second)))
	}
	if r.RelayCPUSeconds > 0 || r.RelayPeakRSS > 0 {
		who := "relay"
		if r.UsageIncludesSelf {
			who = "relay+bench process"
		}
		p("  %s: CPU %.2fs (%.0f%% of one core), peak RSS %s, heap+stacks %s", who, r.RelayCPUSeconds, r.RelayCPUPercent, HumanBytes(float64(r.RelayPeakRSS)), HumanBytes(float64(r.RelayHeapStack)))
	}
	p("  bench: CPU %.2fs", r.BenchCPUSeconds)
	if r.Errors > 0 {
		p("  errors     %d, first: %s", r.Errors, r.FirstError)
	}
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// HumanBytes writes a byte count for people: "512 B", "7.7 KiB", "1.25 GiB".
func HumanBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

// progress draws a bar on w until stop is called.
type progress struct {
	w     io.Writer
	label string
	total uint64
	cur   func() uint64
	lines bool // plain lines, not a redrawn bar
	done  chan struct{}
	ended chan struct{}
}

func startProgress(o Options, label string, total uint64, cur func() uint64) *progress {
	p := &progress{w: o.Progress, label: label, total: total, cur: cur, lines: o.ProgressLines,
		done: make(chan struct{}), ended: make(chan struct{})}
	if p.w == nil {
		close(p.ended)
		return p
	}
	go p.run()
	return p
}

// progressLineEvery is how often plain-line progress writes a line.
const progressLineEvery = 5 * time.Second

func (p *progress) run() {
	defer close(p.ended)
	every := 200 * time.Millisecond
	if p.lines {
		every = progressLineEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			p.draw()
			if !p.lines {
				fmt.Fprintln(p.w)
			}
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *progress) draw() {
	const width = 40
	cur := p.cur()
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(cur)/float64(p.total), 1)
	}
	if p.lines {
		fmt.Fprintf(p.w, "%s %5.1f%% %d/%d\n", p.label, 100*frac, cur, p.total)
		return
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%% %d/%d", p.label, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, cur, p.total)
}

func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.ended
}
