package sim

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/cosnim/relays/transport"
)

func sortFaults(fs []Fault) {
	slices.SortStableFunc(fs, func(a, b Fault) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m { // sorted: below
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func bytesCompare(a, b []byte) int { return bytes.Compare(a, b) }

// setFailpoint turns a failpoint on or off in the registry of the core it
// belongs to (relay/... on the relay, client/... on every client).
func (w *world) setFailpoint(name string, on bool) {
	set := func(p interface {
		Enable(string, string) error
		Disable(string) error
	}) {
		if on {
			_ = p.Enable(name, "return(true)")
		} else {
			_ = p.Disable(name)
		}
	}
	if strings.HasPrefix(name, "relay/") {
		set(w.relayFaults)
		return
	}
	for _, c := range w.clients {
		set(c.faults)
	}
}

// inject applies a scheduled fault unless the chaos phase is over.
func (w *world) inject(f Fault) {
	if !w.healed {
		w.apply(f)
	}
}

// apply applies one fault. Faults with a Duration end by themselves.
func (w *world) apply(f Fault) {
	w.faults++
	w.logf("fault %s %v %v", f.Kind, f.Targets, f.Duration)
	now := w.net.Now()
	switch f.Kind {
	case FaultPartition:
		w.net.Partition(f.Targets, []string{relayName})
	case FaultOneWay:
		w.net.PartitionOneWay(f.Targets[0], relayName)
	case FaultClog:
		w.net.Clog(f.Targets[0], relayName)
	case FaultSwizzle:
		w.net.SwizzleClog(append([]string{relayName}, f.Targets...), f.Duration)
	case FaultHeal:
		w.net.Heal()
	case FaultCrashRelay:
		if w.relayUp {
			w.relayNode.Crash()
			w.relayUp = false
			if f.Duration > 0 {
				w.net.At(now.Add(f.Duration), func() {
					if !w.relayUp && !w.healed {
						w.startRelay()
					}
				})
			}
		}
	case FaultDrainRelay:
		if w.relayUp {
			w.relay.Drain(now, 500*time.Millisecond, time.Second, nil)
			w.net.At(now.Add(f.Duration), func() {
				if w.relayUp && !w.healed {
					w.relayNode.Crash()
					w.relayUp = false
					w.startRelay()
				}
			})
		}
	case FaultCrashClient:
		c := w.byName[f.Targets[0]]
		if c.up {
			c.save()
			c.node.Crash()
			c.up = false
			if f.Duration > 0 {
				w.net.At(now.Add(f.Duration), func() {
					if !c.up && !w.healed {
						c.start()
					}
				})
			}
		}
	case FaultReset:
		if c := w.byName[f.Targets[0]]; c.up && c.dialed.last != nil {
			w.net.ResetConn(c.dialed.last)
		}
	case FaultRefuse:
		w.net.Refuse(relayAddr, true)
		w.net.At(now.Add(f.Duration), func() { w.net.Refuse(relayAddr, false) })
	case FaultReplay:
		if c := w.byName[f.Targets[0]]; c.dialed.first != nil {
			w.net.Replay(c.name, relayAddr, c.dialed.first, 1<<20)
		}
	case FaultBuggify:
		w.setFailpoint(f.Targets[0], true)
		w.net.At(now.Add(f.Duration), func() { w.setFailpoint(f.Targets[0], false) })
	case FaultDrift:
		w.byName[f.Targets[0]].node.SetDrift(f.Duration, 200)
	}
}

// dialRecorder remembers a client's first and latest connections, for
// resets and replays.
type dialRecorder struct {
	d           transport.Dialer
	first, last transport.Conn
}

func (r *dialRecorder) Dial(addr string) transport.Conn {
	c := r.d.Dial(addr)
	if r.first == nil {
		r.first = c
	}
	r.last = c
	return c
}
