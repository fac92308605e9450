package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
)

// DefaultIdleSettle is how long the idle scenario waits after the joins
// before it reads the relay's memory: a connection parks between one and
// two tcp.DefaultParkAfter periods after its last byte, and half a period
// more lets the last ones go.
const DefaultIdleSettle = 2*tcp.DefaultParkAfter + tcp.DefaultParkAfter/2

// DefaultScavengeWait is how long the idle scenario waits, after the GC of
// its memory reading, before it reads RSS a second time: the GC sets the heap
// goal from the parked heap, and the runtime then returns what is above
// it (what the join storm left) within a few seconds. An idle relay gets
// there by itself at the runtime's forced GC, two minutes at most.
const DefaultScavengeWait = 5 * time.Second

// Scenario names.
const (
	ScenarioFanout   = "fanout"
	ScenarioChannels = "channels"
	ScenarioStorm    = "storm"
	ScenarioIdle     = "idle"
)

// Scenarios lists the scenario names in the order the help shows them.
var Scenarios = []string{ScenarioFanout, ScenarioChannels, ScenarioStorm, ScenarioIdle}

// MinSize is the smallest entry: AES-GCM nonce and tag (28 bytes) around a
// 20-byte reference holding the publish time, publisher and sequence.
const MinSize = sealOverhead + refHeader

// MaxSize is the largest entry the relay accepts by default.
const MaxSize = 1100

// Options configure a run. Zero fields take the defaults of Defaults for
// the chosen scenario (see WithDefaults).
type Options struct {
	Scenario string
	Pub      int           // publishers (fanout)
	Sub      int           // subscribers (fanout) or clients per channel (channels)
	Msgs     int           // entries per publisher (fanout) or per client (storm)
	Size     int           // sealed bytes per entry
	Batch    int           // entries per Announce frame
	Channels int           // channels (channels, storm, idle)
	Rate     int           // announced entries per second in all; 0 = as fast as the window allows
	Duration time.Duration // length of a rate run (channels)
	Idle     int           // connections (storm, idle)
	TLS      bool          // TLS to the relay (in-process and spawned relays get a generated certificate)
	Jitter   time.Duration // storm: reconnects are spread uniformly over this
	Window   int           // entries a publisher may have ahead of its slowest subscriber
	Timeout  time.Duration // bound on the whole run
	// Settle is the wait after the joins before the idle scenario reads
	// the relay's memory. Default DefaultIdleSettle; negative: none.
	Settle time.Duration
	// Heartbeats makes the idle scenario's clients ping at the relay's
	// heartbeat interval and answer its pings, as instances do, so that
	// they stay joined past its idle timeout (a long Settle then reads the
	// steady state).
	Heartbeats bool
	// ScavengeWait is the wait before the idle scenario's second RSS
	// reading. Default DefaultScavengeWait; negative: at once.
	ScavengeWait time.Duration

	// IgnoreLimits sends as fast as the scenario asks, past the frame and
	// byte rates the relay advertises (which it enforces by closing the
	// connection). By default senders keep within them.
	IgnoreLimits bool

	// AcceptRate is the relay's accept rate for in-process and spawned
	// relays; 0 keeps the relay's default.
	AcceptRate int

	// Progress receives a progress bar; nil for none.
	Progress io.Writer
	// ProgressLines writes progress as a plain line every few seconds
	// instead of a bar redrawn with '\r': for logs and pipes.
	ProgressLines bool
}

// WithDefaults fills zero fields with the defaults of o.Scenario.
func (o Options) WithDefaults() Options {
	if o.Scenario == "" {
		o.Scenario = ScenarioFanout
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Pub, 1)
	def(&o.Sub, 10)
	def(&o.Size, 128)
	def(&o.Batch, 64)
	def(&o.Window, 1<<14)
	switch o.Scenario {
	case ScenarioFanout:
		def(&o.Msgs, 1_000_000)
		def(&o.Channels, 1)
	case ScenarioChannels:
		def(&o.Channels, 1000)
		if o.Duration == 0 {
			o.Duration = 10 * time.Second
		}
	case ScenarioStorm:
		def(&o.Idle, 1000)
		def(&o.Msgs, 4)
		def(&o.Channels, max(1, o.Idle/10))
		if o.Jitter == 0 {
			// A restarting relay's Drain spreads reconnects over this much.
			o.Jitter = relayserver.DefaultDrainJitter
		}
	case ScenarioIdle:
		def(&o.Idle, 1000)
		def(&o.Channels, max(1, o.Idle/10))
		if o.Settle == 0 {
			o.Settle = DefaultIdleSettle
		}
		if o.ScavengeWait == 0 {
			o.ScavengeWait = DefaultScavengeWait
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	return o
}

// Validate reports options that cannot make a run.
func (o Options) Validate() error {
	known := false
	for _, s := range Scenarios {
		known = known || s == o.Scenario
	}
	switch {
	case !known:
		return fmt.Errorf("bench: unknown scenario %q: want fanout, channels, storm or idle", o.Scenario)
	case o.Pub < 1 || o.Sub < 1:
		return errors.New("bench: --pub and --sub must be at least 1")
	case o.Size < MinSize || o.Size > MaxSize:
		return fmt.Errorf("bench: --size %d: entries are %d..%d bytes (sealing adds 28 bytes to a reference of at least %d)", o.Size, MinSize, MaxSize, refHeader)
	case o.Batch < 1 || o.Batch*(o.Size+2) > 60<<10:
		return fmt.Errorf("bench: --batch %d of %d-byte entries: a frame holds 1 to %d of them", o.Batch, o.Size, (60<<10)/(o.Size+2))
	case o.Msgs < 0 || o.Rate < 0 || o.Idle < 0 || o.Channels < 0 || o.Duration < 0 || o.Jitter < 0 || o.AcceptRate < 0:
		return errors.New("bench: counts, rates and durations must not be negative")
	case o.Window < o.Batch:
		return fmt.Errorf("bench: --window %d is smaller than a batch (%d)", o.Window, o.Batch)
	}
	switch o.Scenario {
	case ScenarioFanout:
		if o.Msgs < 1 {
			return errors.New("bench: fanout needs --msgs of at least 1")
		}
		if o.Channels != 1 {
			return errors.New("bench: fanout runs on one channel; use --scenario channels for more")
		}
	case ScenarioChannels:
		if o.Channels < 1 || o.Sub < 2 {
			return errors.New("bench: channels needs --channels ≥ 1 and --sub ≥ 2 clients per channel")
		}
		if o.Duration <= 0 {
			return errors.New("bench: channels needs a --duration")
		}
	case ScenarioStorm, ScenarioIdle:
		if o.Idle < 1 {
			return fmt.Errorf("bench: %s needs --idle N connections", o.Scenario)
		}
		if o.Scenario == ScenarioStorm && o.Msgs*(o.Size+2) > 60<<10 {
			return fmt.Errorf("bench: storm: --msgs %d entries of %d bytes must fit in one frame", o.Msgs, o.Size)
		}
		if o.Channels < 1 || o.Channels > o.Idle {
			return fmt.Errorf("bench: --channels %d must be between 1 and --idle %d", o.Channels, o.Idle)
		}
	}
	return nil
}
