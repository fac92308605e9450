package sim

import (
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/wire"
)

// Rotation is the life of a long-running relay (ClassLongRunning): every
// client of channel 0 goes away at Away for Gone, long enough for the
// relay to notice and forget the channel, and the clients of channel k ≥ 1
// start only once it was forgotten, Stagger apart. Channels the relay
// creates after it forgot another are new: their first Joined must say
// complete (PROTOCOL §4.4), which a relay-wide "forgot something" flag
// broke.
type Rotation struct {
	Away, Gone, Stagger time.Duration
}

// genRotation draws a rotation.
func genRotation(rng *rand.Rand) *Rotation {
	return &Rotation{
		Away:    time.Duration(3+rng.IntN(6)) * time.Second,
		Gone:    time.Duration(rng.IntN(20)) * time.Second, // past forgetAfter
		Stagger: time.Duration(2+rng.IntN(4)) * time.Second,
	}
}

// forgetAfter bounds how long after channel 0's clients went away the
// relay has forgotten it: the idle timeout (to notice they are gone), the
// channel idle timeout, and a second of slack.
func forgetAfter(t Timing) time.Duration { return t.Idle + channelIdleOf(t) + time.Second }

// gone is how long channel 0's clients stay away.
func (r *Rotation) gone(t Timing) time.Duration { return forgetAfter(t) + r.Gone }

// createAt is when, since the start, the clients of channel ch ≥ 1 start.
func (r *Rotation) createAt(t Timing, ch int) time.Duration {
	return r.Away + forgetAfter(t) + time.Duration(ch)*r.Stagger
}

// faults are the rotation's faults: channel 0's clients crash together
// and come back.
func (r *Rotation) faults(sc *Scenario) []Fault {
	var out []Fault
	for i := range sc.ClientsPerChannel {
		out = append(out, Fault{At: r.Away, Kind: FaultCrashClient, Targets: []string{ClientName(0, i)}, Duration: r.gone(sc.Timing)})
	}
	return out
}

// judgeNewChannel checks, in rotation runs, that the first Joined of each
// channel from this relay incarnation says complete: nothing of a channel
// the relay creates can have been lost, unless the relay evicted or is
// over its memory budget.
func (w *world) judgeNewChannel(c *simClient, ch int, f *wire.Joined) {
	if w.sc.Rotation == nil || w.firstJoined[ch] {
		return
	}
	if w.firstJoined == nil {
		w.firstJoined = map[int]bool{}
	}
	w.firstJoined[ch] = true
	st := w.relay.Stats()
	if st.Evicted > 0 || w.memoryOver {
		return
	}
	w.checked[invCatchUp]++
	if f.Flags&wire.JoinedComplete == 0 {
		w.violate("catch-up: the relay told %s that channel %d, new to this incarnation, is incomplete (it forgot %d other channels): members list storage for nothing",
			c.name, ch, st.ChannelsForgotten)
	}
}
