package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
)

// What every world shares (the one-relay, pool and hostile-relay worlds).

// base is what every world holds: its scenario, network, random stream,
// trace and course, with the methods that need only these.
type base struct {
	sc    Scenario
	opt   Options
	net   *netsim.Network
	rng   *rand.Rand
	trace io.Writer // hash and optional timeline
	hash  hash.Hash
	course
}

func (b *base) start() time.Time { return b.healAt.Add(-b.sc.Chaos) }

func (b *base) stampOf(t time.Time) string { return stamp(t.Sub(b.start())) }

func (b *base) logf(format string, args ...any) {
	fmt.Fprintf(b.trace, "t=%s sim ", stamp(b.net.Now().Sub(b.start())))
	fmt.Fprintf(b.trace, format+"\n", args...)
}

// violate records a violation (the first 50) and traces it.
func (b *base) violate(format string, args ...any) {
	v := fmt.Sprintf("t=%s ", stamp(b.net.Now().Sub(b.start()))) + fmt.Sprintf(format, args...)
	b.logf("VIOLATION %s", v)
	if len(b.violations) < 50 {
		b.violations = append(b.violations, v)
	}
}

// coreRand is a core's random source, drawn from the run's stream.
func (b *base) coreRand() *rand.Rand {
	return rand.New(rand.NewPCG(b.rng.Uint64(), b.rng.Uint64()))
}

// course is what a world keeps of a run's course.
type course struct {
	healed     bool
	healAt     time.Time
	healBound  time.Duration
	converged  time.Time
	violations []string
	announces  int
	faults     int
}

// play runs a world through its chaos phase, heals it, then checks it
// every checkEvery until it converged or its heal bound passed.
func (c *course) play(net *netsim.Network, heal, check func()) {
	net.RunUntil(c.healAt)
	heal()
	end := c.healAt.Add(c.healBound)
	for !net.Now().After(end) && c.converged.IsZero() {
		net.RunUntil(net.Now().Add(checkEvery))
		check()
	}
}

// scheduleAnnounces has each client announce n times at random in the
// chaos phase that begins at t0; the clients draw in order, so a seed
// keeps its workload.
func scheduleAnnounces(net *netsim.Network, rng *rand.Rand, t0 time.Time, chaos time.Duration, n int, announce []func()) {
	for _, a := range announce {
		for range n {
			net.At(t0.Add(time.Duration(rng.Int64N(int64(chaos)))), a)
		}
	}
}

// timed fills res's wall-clock figures for a run that began at start.
func timed(res Result, start time.Time) Result {
	res.WallSeconds = time.Since(start).Seconds()
	if res.WallSeconds > 0 {
		res.EventsPerWallSec = float64(res.Events) / res.WallSeconds
	}
	return res
}

// newTrace is a run's trace: hashed, and copied to the timeline if asked.
func newTrace(opt Options) (hash.Hash, io.Writer) {
	h := sha256.New()
	if opt.Timeline != nil {
		return h, io.MultiWriter(h, opt.Timeline)
	}
	return h, h
}

// channelKeys derives the keys of a run's channels from its seed.
func channelKeys(seed uint64, channels int) []*roster.Keys {
	secret := fmt.Appendf(nil, "continuum secret %d", seed)
	keys := make([]*roster.Keys, channels)
	for ch := range keys {
		k, err := roster.DeriveKeys(secret, fmt.Sprintf("hub-%d", ch))
		if err != nil {
			panic(err)
		}
		keys[ch] = k
	}
	return keys
}

// finish ends a result: the fabrication check (clients refused entries
// nobody could have forged), the trace hash, and for a failed run the
// command that replays it.
func finish(res *Result, sc Scenario, h hash.Hash) {
	injector := sc.Pool != nil && sc.Pool.HostileBus // injects entries that do not open
	if !sc.Forger && !injector && res.ForgedRefused > 0 {
		res.Violations = append(res.Violations, fmt.Sprintf("fabrication: clients refused %d entries that did not open, with no forger in the run", res.ForgedRefused))
	}
	res.TraceSHA256 = hex.EncodeToString(h.Sum(nil))
	if len(res.Violations) > 0 {
		res.ReplayCommand = fmt.Sprintf("cosnim sim --seed %d --timeline timeline.txt --svg timeline.svg", sc.Seed)
		for _, fp := range sc.Failpoints {
			res.ReplayCommand += " --failpoint " + fp
		}
	}
}
