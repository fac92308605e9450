package value

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
)

// CompareConfig is the workload and the faults of a comparison: the same
// seeded workload runs once per Variant. Zero fields take the defaults of
// DefaultCompareConfig.
type CompareConfig struct {
	Seed       uint64
	Instances  int           // long-running instances (default 50)
	Hubs       int           // capsule hubs of the one continuum; every instance joins all (default 5)
	WriteEvery time.Duration // each instance writes one capsule this often, to a random hub (default 1m)
	Duration   time.Duration // virtual time the workload runs (default 1h)
	// Commands are instances that start during the workload with nothing
	// known, like a `cosnim` command, and exit once they know every capsule
	// that was visible in storage when they started (default 12, spread
	// evenly).
	Commands int
	Storage  StorageConfig     // each hub's storage model
	List     client.ListConfig // the instances' listing policy (client defaults)

	CrashEvery time.Duration // with_relay_crashing: the relay crashes this often (default 10m)
	CrashDown  time.Duration // and comes back after this, its memory lost (default 5s)
	// with_relay_partitioned: every PartitionEvery (default 10m, offset by
	// half of it from the start), PartitionInstances instances (default a
	// fifth, a different group each time) are cut off from the relay, not
	// from storage, for PartitionFor (default 2m).
	PartitionEvery     time.Duration
	PartitionFor       time.Duration
	PartitionInstances int
	// PoolRelays is the number of relays of the pool variants (default 3).
	PoolRelays int
}

// DefaultCompareConfig returns the default workload of `cosnim sim
// --compare`.
func DefaultCompareConfig() CompareConfig {
	return CompareConfig{
		Seed: 1, Instances: 50, Hubs: 5, WriteEvery: time.Minute, Duration: 2 * time.Hour, Commands: 12,
		Storage: DefaultStorageConfig(), List: client.DefaultListConfig(),
		CrashEvery: 10 * time.Minute, CrashDown: 5 * time.Second,
		PartitionEvery: 10 * time.Minute, PartitionFor: 2 * time.Minute, // PartitionInstances: a fifth of Instances
		PoolRelays: 3,
	}
}

// WithDefaults fills zero fields with defaults.
func (c CompareConfig) WithDefaults() CompareConfig {
	d := DefaultCompareConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.Instances, d.Instances)
	setInt(&c.Hubs, d.Hubs)
	setDur(&c.WriteEvery, d.WriteEvery)
	setDur(&c.Duration, d.Duration)
	setInt(&c.Commands, d.Commands)
	setDur(&c.CrashEvery, d.CrashEvery)
	setDur(&c.CrashDown, d.CrashDown)
	setDur(&c.PartitionEvery, d.PartitionEvery)
	setDur(&c.PartitionFor, d.PartitionFor)
	setInt(&c.PoolRelays, d.PoolRelays)
	if c.PartitionInstances == 0 {
		c.PartitionInstances = max(1, c.Instances/5)
	}
	c.Storage = c.Storage.WithDefaults()
	c.List = c.List.WithDefaults()
	return c
}

// Validate reports settings that cannot work.
func (c CompareConfig) Validate() error {
	switch {
	case c.Instances < 2 || c.Hubs < 1:
		return errors.New("sim: compare needs at least 2 instances and 1 hub")
	case c.WriteEvery <= 0 || c.Duration <= 0 || c.Commands < 0:
		return errors.New("sim: compare: write interval and duration must be positive")
	case c.CrashDown >= c.CrashEvery || c.PartitionFor >= c.PartitionEvery:
		return errors.New("sim: compare: a fault must end before the next starts")
	case c.PartitionInstances > c.Instances:
		return errors.New("sim: compare: more partitioned instances than instances")
	case c.PoolRelays < 2 || c.PoolRelays > client.MaxPoolRelays:
		return fmt.Errorf("sim: compare: pool variants need 2 to %d relays, got %d", client.MaxPoolRelays, c.PoolRelays)
	}
	if err := c.Storage.Validate(); err != nil {
		return err
	}
	return c.List.Validate()
}

// SettleBound is how long after the workload every capsule must be known
// to every live instance: the longest listing interval (with its 10%
// jitter), a lagging link's wait, a Soon listing, visibility and the
// listing's own pages, and a minute of slack.
func (c CompareConfig) SettleBound() time.Duration {
	c = c.WithDefaults()
	longest := max(c.List.HealthyInterval, c.List.ListInterval)
	return longest + longest/10 + c.List.StaleAfter + c.List.Soon + c.Storage.VisibleWithin + 10*c.Storage.ListLatency + time.Minute
}

// Variant names one run of a comparison.
type Variant string

// The variants, in the order reports show them. The first four run one
// relay (or none); the pool variants run CompareConfig.PoolRelays relays
// ("relay-1", ...) and instances that use a client.Pool over them.
const (
	WithRelay            Variant = "with_relay"
	WithoutRelay         Variant = "without_relay"
	WithRelayCrashing    Variant = "with_relay_crashing"
	WithRelayPartitioned Variant = "with_relay_partitioned"
	// PoolPartitioned: relays on a backbone, homes 2, the partitions of
	// with_relay_partitioned each from one relay of the pool (in turn).
	PoolPartitioned Variant = "pool_partitioned"
	// PoolCrashing: relays on a backbone, homes 2, the crashes of
	// with_relay_crashing each of one relay of the pool (in turn).
	PoolCrashing Variant = "pool_crashing"
	// PoolHealthyHomes1 and PoolHealthyHomes2: no backbone, no fault,
	// homes 1 and 2, to weigh what a second home costs the relays. Without
	// a backbone and with homes 1, the members of a channel still all
	// prefer the same relay (rendezvous order), so they hear each other.
	PoolHealthyHomes1 Variant = "pool_healthy_homes1"
	PoolHealthyHomes2 Variant = "pool_healthy_homes2"
)

// Variants lists every variant.
var Variants = []Variant{
	WithRelay, WithoutRelay, WithRelayCrashing, WithRelayPartitioned,
	PoolPartitioned, PoolCrashing, PoolHealthyHomes1, PoolHealthyHomes2,
}

// Measure is what one variant measured. Times are virtual.
type Measure struct {
	Variant Variant `json:"variant"`
	// Awareness: from a capsule's write until another long-running
	// instance knows it, over every (capsule, other instance) pair.
	AwarenessP50 float64 `json:"awareness_p50_seconds"`
	AwarenessP99 float64 `json:"awareness_p99_seconds"`
	AwarenessMax float64 `json:"awareness_max_seconds"`
	// ListQueriesPerInstanceHour counts the list queries (pages) of the
	// long-running instances during the workload.
	ListQueriesPerInstanceHour float64 `json:"list_queries_per_instance_hour"`
	// CatchUp: from a command's start until it knows every capsule that was
	// visible in storage then (median and worst).
	CatchUp    float64 `json:"catch_up_seconds"`
	CatchUpMax float64 `json:"catch_up_max_seconds"`
	// BytesSentPerInstance is what a long-running instance sent to the
	// relay during the workload; ListBytesPerInstance what its listings
	// returned.
	BytesSentPerInstance float64 `json:"bytes_sent_per_instance"`
	ListBytesPerInstance float64 `json:"list_bytes_per_instance"`
	// LearnedViaRelay is the share of capsules written by others that
	// instances learned first from the relay rather than by listing.
	LearnedViaRelay float64 `json:"learned_via_relay"`
	// RelayBytes sums, over the relays and their restarts, the bytes they
	// received from and sent to instances during the workload (backbone
	// traffic not included).
	RelayBytes uint64 `json:"relay_bytes"`
	// RelaysDelivering counts the relays that fanned entries out to
	// members during the workload.
	RelaysDelivering int `json:"relays_delivering"`
	// MissedCapsules counts capsules in storage that some live instance
	// still did not know SettleBound after the workload: the invariant
	// wants 0.
	MissedCapsules int      `json:"missed_capsules"`
	SettledAfter   float64  `json:"settled_after_seconds"`
	Capsules       int      `json:"capsules"`
	Faults         int      `json:"faults"`
	Events         uint64   `json:"events"`
	WallSeconds    float64  `json:"wall_seconds"`
	Violations     []string `json:"violations"`

	samples []sample
	marks   []faultMark
	start   time.Time
	end     time.Duration
}

// Comparison is the result of Compare.
type Comparison struct {
	Seed                 uint64  `json:"seed"`
	Instances            int     `json:"instances"`
	Hubs                 int     `json:"hubs"`
	VirtualSeconds       float64 `json:"virtual_seconds"`
	WithRelay            Measure `json:"with_relay"`
	WithoutRelay         Measure `json:"without_relay"`
	WithRelayCrashing    Measure `json:"with_relay_crashing"`
	WithRelayPartitioned Measure `json:"with_relay_partitioned"`
	PoolPartitioned      Measure `json:"pool_partitioned"`
	PoolCrashing         Measure `json:"pool_crashing"`
	PoolHealthyHomes1    Measure `json:"pool_healthy_homes1"`
	PoolHealthyHomes2    Measure `json:"pool_healthy_homes2"`
	WallSeconds          float64 `json:"wall_seconds"`
}

// Measures returns the variants' measures in report order (that of
// Variants).
func (c *Comparison) Measures() []*Measure {
	return []*Measure{
		&c.WithRelay, &c.WithoutRelay, &c.WithRelayCrashing, &c.WithRelayPartitioned,
		&c.PoolPartitioned, &c.PoolCrashing, &c.PoolHealthyHomes1, &c.PoolHealthyHomes2,
	}
}

// Compare runs every variant of cfg, at most parallel at once (at least
// one), and calls progress (if not nil) as each finishes. The result
// depends on cfg alone, apart from the wall-time fields.
func Compare(cfg CompareConfig, parallel int, progress func(Variant)) (Comparison, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Comparison{}, err
	}
	start := time.Now()
	cmp := Comparison{Seed: cfg.Seed, Instances: cfg.Instances, Hubs: cfg.Hubs, VirtualSeconds: cfg.Duration.Seconds()}
	out := cmp.Measures()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		sem = make(chan struct{}, max(parallel, 1))
	)
	for i, v := range Variants {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			m := RunVariant(cfg, v)
			*out[i] = m
			<-sem
			if progress != nil {
				mu.Lock()
				progress(v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cmp.WallSeconds = time.Since(start).Seconds()
	return cmp, nil
}

// capsule is one capsule written during a comparison run.
type capsule struct {
	ref     []byte
	hub     int
	writer  *instance
	written time.Time
	visible time.Time
}

// sample is one awareness measurement.
type sample struct {
	written time.Time
	latency time.Duration
}

// faultMark is a fault for plots: [from, to) since the start.
type faultMark struct {
	from, to time.Duration
	what     string
}

// cworld is one comparison run.
type cworld struct {
	cfg          CompareConfig
	variant      Variant
	spec         variantSpec
	net          *netsim.Network
	rng          *rand.Rand // cores' sources
	workloadRand *rand.Rand // the workload's draws: the same in every variant
	start        time.Time

	keys    []*roster.Keys
	storage []*Storage
	caps    []capsule
	byRef   map[string]int

	relays []*simRelay

	instances    []*instance // long-running
	commands     []*instance
	awareness    []sample
	marks        []faultMark
	faults       int
	workloadOver bool
	bytesSent    uint64
	relayBytes   uint64
	delivering   int
}

// RunVariant runs one variant of a comparison.
func RunVariant(cfg CompareConfig, v Variant) Measure {
	wall := time.Now()
	cfg = cfg.WithDefaults()
	w := &cworld{cfg: cfg, variant: v, spec: v.spec(cfg), byRef: map[string]int{}}
	w.net = netsim.New(cfg.Seed, netsim.Options{RecordBytes: -1})
	w.start = w.net.Now()
	w.rng = rand.New(rand.NewPCG(cfg.Seed, 0xc0de))
	w.workloadRand = rand.New(rand.NewPCG(cfg.Seed, 0x301c))
	secret := fmt.Appendf(nil, "continuum secret %d", cfg.Seed)
	for h := range cfg.Hubs {
		k, err := roster.DeriveKeys(secret, fmt.Sprintf("hub-%d", h))
		if err != nil {
			panic(err)
		}
		st, err := NewStorage(cfg.Storage)
		if err != nil {
			panic(err)
		}
		w.keys = append(w.keys, k)
		w.storage = append(w.storage, st)
	}
	w.addRelays()
	for i := range cfg.Instances {
		w.instances = append(w.instances, w.startInstance(fmt.Sprintf("i%02d", i), false))
	}
	w.scheduleWorkload()
	w.scheduleFaults()
	end := w.start.Add(cfg.Duration)
	w.net.RunUntil(end)
	w.endWorkload()
	settled := w.settle(end.Add(cfg.SettleBound()))
	m := w.measure()
	m.SettledAfter = settled.Sub(end).Seconds()
	m.WallSeconds = time.Since(wall).Seconds()
	return m
}

func (w *cworld) coreRand() *rand.Rand { return rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64())) }

// scheduleWorkload draws every write (time, hub) and every command start
// up front, from the workload source alone.
func (w *cworld) scheduleWorkload() {
	cfg := w.cfg
	for _, in := range w.instances {
		phase := time.Duration(w.workloadRand.Int64N(int64(cfg.WriteEvery)))
		for t := phase; t < cfg.Duration; t += cfg.WriteEvery {
			h := w.workloadRand.IntN(cfg.Hubs)
			w.net.At(w.start.Add(t), func() {
				if !w.workloadOver {
					in.write(h)
				}
			})
		}
	}
	for k := range cfg.Commands {
		at := cfg.Duration * time.Duration(2*k+1) / time.Duration(2*cfg.Commands)
		w.net.At(w.start.Add(at), func() {
			w.commands = append(w.commands, w.startInstance(fmt.Sprintf("cmd%02d", k), true))
		})
	}
}

// endWorkload stops writes and faults; what is counted per hour stops here.
func (w *cworld) endWorkload() {
	w.workloadOver = true
	w.net.Heal()
	for _, in := range w.instances {
		w.bytesSent += in.core.Stats().BytesOut
	}
	w.relayBytes, w.delivering = w.relayCounts()
}

// settle runs until every live instance knows every capsule, or until the
// bound, and returns when it stopped.
func (w *cworld) settle(bound time.Time) time.Time {
	for {
		if w.allKnown() || !w.net.Now().Before(bound) {
			return w.net.Now()
		}
		w.net.RunUntil(w.net.Now().Add(time.Second))
	}
}

func (w *cworld) allKnown() bool {
	for _, in := range w.instances {
		if in.live && in.nKnown != len(w.caps) {
			return false
		}
	}
	return true
}

// measure computes the variant's figures.
func (w *cworld) measure() Measure {
	cfg := w.cfg
	m := Measure{Variant: w.variant, Capsules: len(w.caps), Faults: w.faults, Events: w.net.Events(), Violations: []string{}}
	lat := make([]time.Duration, len(w.awareness))
	for i, s := range w.awareness {
		lat[i] = s.latency
	}
	slices.Sort(lat)
	m.AwarenessP50, m.AwarenessP99 = pctDur(lat, 50).Seconds(), pctDur(lat, 99).Seconds()
	if len(lat) > 0 {
		m.AwarenessMax = lat[len(lat)-1].Seconds()
	}
	n := float64(len(w.instances))
	var queries, listBytes, viaRelay, viaList uint64
	for _, in := range w.instances {
		queries += in.queries
		listBytes += in.listBytes
		viaRelay += in.viaRelay
		viaList += in.viaList
	}
	m.ListQueriesPerInstanceHour = float64(queries) / n / cfg.Duration.Hours()
	m.ListBytesPerInstance = float64(listBytes) / n
	m.BytesSentPerInstance = float64(w.bytesSent) / n
	m.RelayBytes, m.RelaysDelivering = w.relayBytes, w.delivering
	if viaRelay+viaList > 0 {
		m.LearnedViaRelay = float64(viaRelay) / float64(viaRelay+viaList)
	}
	var cu []time.Duration
	for _, c := range w.commands {
		if !c.isCaughtUp {
			m.Violations = append(m.Violations, fmt.Sprintf("command %s started at %v never caught up", c.name, c.started.Sub(w.start)))
			continue
		}
		cu = append(cu, c.caughtUp)
	}
	slices.Sort(cu)
	m.CatchUp = pctDur(cu, 50).Seconds()
	if len(cu) > 0 {
		m.CatchUpMax = cu[len(cu)-1].Seconds()
	}
	for c := range w.caps {
		for _, in := range w.instances {
			if in.live && !in.knows(c) {
				m.MissedCapsules++
				break
			}
		}
	}
	if m.MissedCapsules > 0 {
		m.Violations = append(m.Violations, fmt.Sprintf("eventual awareness: %d capsules in storage unknown to some live instance %v after the workload", m.MissedCapsules, cfg.SettleBound()))
	}
	m.samples = w.awareness
	m.marks = w.marks
	m.start, m.end = w.start, cfg.Duration
	return m
}

func pctDur(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// WriteTable prints the comparison side by side, the single-relay
// variants first, then the pool variants.
func (c *Comparison) WriteTable(out io.Writer) {
	all := c.Measures()
	fmt.Fprintf(out, "relay value: seed %d, %d instances, %d hubs, %.0f virtual minutes\n", c.Seed, c.Instances, c.Hubs, c.VirtualSeconds/60)
	for len(all) > 0 {
		n := min(len(all), 4)
		writeTable(out, all[:n])
		all = all[n:]
	}
	for _, m := range c.Measures() {
		for _, v := range m.Violations {
			fmt.Fprintf(out, "VIOLATION %s: %s\n", m.Variant, v)
		}
	}
}

func writeTable(out io.Writer, ms []*Measure) {
	fmt.Fprintf(out, "\n%-30s", "")
	for _, m := range ms {
		fmt.Fprintf(out, " %22s", m.Variant)
	}
	fmt.Fprintln(out)
	row := func(name string, f func(m *Measure) string) {
		fmt.Fprintf(out, "%-30s", name)
		for _, m := range ms {
			fmt.Fprintf(out, " %22s", f(m))
		}
		fmt.Fprintln(out)
	}
	secs := func(s float64) string {
		switch {
		case s < 1:
			return fmt.Sprintf("%.1fms", s*1000)
		default:
			return fmt.Sprintf("%.1fs", s)
		}
	}
	row("awareness p50", func(m *Measure) string { return secs(m.AwarenessP50) })
	row("awareness p99", func(m *Measure) string { return secs(m.AwarenessP99) })
	row("awareness max", func(m *Measure) string { return secs(m.AwarenessMax) })
	row("list queries /instance/hour", func(m *Measure) string { return fmt.Sprintf("%.1f", m.ListQueriesPerInstanceHour) })
	row("command catch-up p50", func(m *Measure) string { return secs(m.CatchUp) })
	row("command catch-up max", func(m *Measure) string { return secs(m.CatchUpMax) })
	row("relay bytes sent /instance", func(m *Measure) string { return fmt.Sprintf("%.0f KB", m.BytesSentPerInstance/1000) })
	row("relay bytes in+out, all", func(m *Measure) string { return fmt.Sprintf("%.1f MB", float64(m.RelayBytes)/1e6) })
	row("relays delivering", func(m *Measure) string { return fmt.Sprint(m.RelaysDelivering) })
	row("listing bytes /instance", func(m *Measure) string { return fmt.Sprintf("%.0f KB", m.ListBytesPerInstance/1000) })
	row("learned via relay", func(m *Measure) string { return fmt.Sprintf("%.1f%%", 100*m.LearnedViaRelay) })
	row("faults", func(m *Measure) string { return fmt.Sprint(m.Faults) })
	row("capsules", func(m *Measure) string { return fmt.Sprint(m.Capsules) })
	row("missed capsules", func(m *Measure) string { return fmt.Sprint(m.MissedCapsules) })
	row("all known after workload", func(m *Measure) string { return secs(m.SettledAfter) })
	row("wall time", func(m *Measure) string { return fmt.Sprintf("%.1fs", m.WallSeconds) })
}

// Violations lists every variant's violations, prefixed by its name.
func (c *Comparison) Violations() []string {
	var out []string
	for _, m := range c.Measures() {
		for _, v := range m.Violations {
			out = append(out, string(m.Variant)+": "+v)
		}
	}
	return out
}
