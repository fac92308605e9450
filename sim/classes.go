package sim

import (
	"math/rand/v2"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/relay"
)

// Class is a family of generated scenarios. Each seed belongs to one class,
// drawn from the seed alone (classOf), so every class replays by seed.
type Class string

// Seed classes and their share of seeds, in percent (classShares).
const (
	// ClassDefault: short timings (heartbeat 1s, idle 3s, backoff ≤ 2s,
	// anti-entropy 5s) so runs cover many cycles.
	ClassDefault Class = "default"
	// ClassAEOff: anti-entropy off, so the fast paths (fan-out, catch-up on
	// join, resync) stand alone; failpoints that lose data are not drawn.
	ClassAEOff Class = "ae-off"
	// ClassAEProd: anti-entropy at its production value (30s).
	ClassAEProd Class = "ae-prod"
	// ClassSmallCaps: tiny cache, pending and frame limits and a slow
	// network, so eviction, pending overflow, resync, the incomplete-cache
	// flag and multi-frame syncs happen in most seeds.
	ClassSmallCaps Class = "small-caps"
	// ClassLargeRoster: thousands of entries per channel, most of them on
	// the clients' disks at start.
	ClassLargeRoster Class = "large-roster"
	// ClassProdTimings: production timings (heartbeat 15s, idle 45s,
	// backoff ≤ 30s, anti-entropy 30s), every bound derived from them.
	ClassProdTimings Class = "prod-timings"
	// ClassHostile: hostile clients beside the honest ones (see hostile.go).
	ClassHostile Class = "hostile"
	// ClassPool: pools of 2–3 relays with 1 or 2 homes, with or without a
	// backbone, and clients running client.Pool (pool.go).
	ClassPool Class = "pool"
	// ClassHostileRelay: the relay, or one relay of a pool, is malicious
	// and asks for storage listings again and again (hostilerelay.go).
	ClassHostileRelay Class = "hostile-relay"
	// ClassLongRunning: a relay that runs long enough for channels to go
	// idle and be forgotten while others are created: the first channel's
	// clients all go away past channel-idle-timeout and come back, and the
	// other channels' clients start only after it was forgotten. No other
	// faults, so every first Joined of a channel is judged (rotation.go).
	ClassLongRunning Class = "long-running"
)

// classShares lists the classes with their share of seeds; shares sum to
// 100. A class carved from another takes its share out of that class's
// draw, by a second draw of its own (carveSalt), so that adding it left
// every seed of the other classes where it was.
var classShares = []struct {
	class      Class
	share      int
	carvedFrom Class
	salt       uint64 // of the carving draw; carveSalt when 0
}{
	{ClassDefault, 20, "", 0},
	{ClassPool, 12, ClassDefault, 0},
	{ClassAEOff, 10, "", 0},
	{ClassAEProd, 6, "", 0},
	{ClassLongRunning, 4, ClassAEProd, longRunningSalt},
	{ClassSmallCaps, 15, "", 0},
	{ClassLargeRoster, 10, "", 0},
	{ClassProdTimings, 10, "", 0},
	{ClassHostile, 10, "", 0},
	{ClassHostileRelay, 3, ClassDefault, 0},
}

// carveSalt seeds the draw between a class and those carved from it. Its
// value keeps the seeds that tests name (42, the self-tests', 1..12) in
// the classes they had before ClassPool.
const carveSalt = 0xca89

// longRunningSalt is ClassLongRunning's carving draw from ClassAEProd: it
// keeps seed 12, which a self-test names, in ClassAEProd, and puts seeds
// 25 and 35 of the ones make test runs in ClassLongRunning.
const longRunningSalt = 0x10af

// classOf draws a seed's class from a stream of its own, so that changes
// to the generator never move a seed to another class.
func classOf(seed uint64) Class {
	n := rand.New(rand.NewPCG(seed, 0xc1a55)).IntN(100)
	for _, cs := range classShares {
		if cs.carvedFrom != "" {
			continue
		}
		whole := cs.share
		for _, o := range classShares {
			if o.carvedFrom == cs.class {
				whole += o.share
			}
		}
		if n >= whole {
			n -= whole
			continue
		}
		salt := uint64(carveSalt)
		for _, o := range classShares {
			if o.carvedFrom == cs.class && o.salt != 0 {
				salt = o.salt
			}
		}
		m := rand.New(rand.NewPCG(seed, salt)).IntN(whole)
		for _, o := range classShares {
			if o.carvedFrom == cs.class {
				if m < o.share {
					return o.class
				}
				m -= o.share
			}
		}
		return cs.class
	}
	return ClassDefault
}

// Timing is the cores' timing in a scenario.
type Timing struct {
	Heartbeat, Idle        time.Duration
	BackoffMin, BackoffMax time.Duration
	// AntiEntropy is the clients' sync period; 0 turns it off.
	AntiEntropy time.Duration
}

// shortTiming is the default class's timing.
var shortTiming = Timing{Heartbeat: time.Second, Idle: 3 * time.Second,
	BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second, AntiEntropy: 5 * time.Second}

// prodTiming is the production defaults of relay.DefaultConfig and
// client.DefaultConfig.
var prodTiming = func() Timing {
	r, c := relay.DefaultConfig(), client.DefaultConfig()
	return Timing{Heartbeat: r.HeartbeatInterval, Idle: r.IdleTimeout,
		BackoffMin: c.BackoffMin, BackoffMax: c.BackoffMax, AntiEntropy: c.AntiEntropy}
}()

// Caps are the relay limits and network a scenario runs with; zero fields
// take the simulator's defaults.
type Caps struct {
	CacheEntries, PendingEntries int
	MaxFrameSize                 int
	HighWater                    int // relay slow-member mark, and netsim's Writable mark
	Bandwidth                    int // bytes per second per direction
}

// aeOff stands for "anti-entropy off" in client configs: longer than any run.
const aeOff = 1000 * time.Hour

// aePeriod is the clients' anti-entropy period as their configs hold it.
func (w *world) aePeriod() time.Duration { return aePeriodOf(w.sc.Timing) }

func aePeriodOf(t Timing) time.Duration {
	if t.AntiEntropy == 0 {
		return aeOff
	}
	return t.AntiEntropy
}

// healBound is how long after faults stop every live client must hold the
// union of its channel: the idle timeout (to notice a dead link), the
// maximum backoff (to reconnect), two anti-entropy periods (for a client
// whose link never broke) and 5s of slack. Without anti-entropy, joins
// alone must converge, so that term is dropped.
func (t Timing) healBound() time.Duration {
	return t.Idle + t.BackoffMax + 2*t.AntiEntropy + 5*time.Second
}
