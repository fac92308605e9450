package netsim

import (
	"container/heap"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cosnim/relays/transport"
)

// Options configures a Network. The zero value gives the documented
// defaults.
type Options struct {
	// Latency and Jitter give the one-way delay of each delivery:
	// Latency + rand[0, Jitter). Defaults 500µs and 200µs. A negative
	// Jitter means none.
	Latency, Jitter time.Duration
	// Bandwidth is in bytes per virtual second per connection direction.
	// 0 means the default, 100 MB/s; negative means unlimited.
	Bandwidth int
	// ConnectTimeout is how long a dial waits for its handshake before
	// failing with transport.ErrTimeout. Default 3s.
	ConnectTimeout time.Duration
	// HighWater and LowWater drive Handler.Writable: it fires once Queued
	// drops below LowWater after having reached HighWater. Defaults 64 KiB
	// and 16 KiB.
	LowWater, HighWater int
	// SplitReads delivers the bytes of a direction in random chunk sizes,
	// splitting and coalescing what the sender passed to Send.
	SplitReads bool
	// RecordBytes is how many bytes each connection end keeps of what it
	// sent, for Replay. Default 64 KiB; negative records nothing.
	RecordBytes int
	// Start is the virtual epoch. Default 2030-01-01T00:00:00Z.
	Start time.Time
}

func (o Options) withDefaults() Options {
	if o.Latency == 0 {
		o.Latency = 500 * time.Microsecond
	}
	if o.Jitter == 0 {
		o.Jitter = 200 * time.Microsecond
	}
	if o.Bandwidth == 0 {
		o.Bandwidth = 100 << 20
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 3 * time.Second
	}
	if o.HighWater == 0 {
		o.HighWater = 64 << 10
	}
	if o.LowWater == 0 {
		o.LowWater = 16 << 10
	}
	if o.RecordBytes == 0 {
		o.RecordBytes = 64 << 10
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return o
}

// Stats counts what a Network did.
type Stats struct {
	Events         uint64 // events processed, stale ones included
	Dials          uint64 // Dial calls, Replay included
	Accepted       uint64 // connections accepted by a listener
	Refused        uint64 // dials that failed with ErrRefused
	Timeouts       uint64 // dials that failed with ErrTimeout
	Resets         uint64 // Closed(ErrReset) delivered
	EOFs           uint64 // Closed(io.EOF) delivered
	Crashes        uint64 // Crash calls (Restart of a live node included)
	Messages       uint64 // Handler.Data calls
	BytesSent      uint64 // bytes accepted by Send
	BytesDelivered uint64 // bytes handed to a Handler.Data
	BytesDropped   uint64 // bytes that reached a dead or closed end, or were reset
	Ticks          uint64 // Handler.Tick calls
}

// Network is a deterministic in-memory network with one virtual clock and
// one seeded random source. It is not safe for concurrent use: everything,
// handlers included, runs on the caller's goroutine.
type Network struct {
	heals uint64 // Heal calls, so scheduled swizzle steps can tell they are stale
	opt   Options
	rng   *rand.Rand
	now   time.Duration // virtual time since opt.Start
	seq   uint64
	queue eventHeap
	trace func(string)
	tw    io.Writer // SetTraceWriter's; lines end with '\n'
	tbuf  []byte    // the line being traced, reused
	seen  func(at time.Duration, conn uint64, from, to string, b []byte)
	stats Stats

	nodes     []*Node
	byName    map[string]*Node
	listeners map[string]*Node // addr → node listening on it now
	owners    map[string]*Node // addr → node that last listened on it
	refused   map[string]bool
	cut       map[link]bool // partitions, by direction
	clogged   map[link]bool // clogs, by direction

	connSeq uint64
	conns   []*conn // in creation order
	dirty   []*pipe // pipes to pump after the current event
}

// link is one direction between two nodes, by name.
type link struct{ from, to string }

// New returns an empty network whose randomness comes from seed alone.
func New(seed uint64, opt Options) *Network {
	return &Network{
		opt:       opt.withDefaults(),
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byName:    map[string]*Node{},
		listeners: map[string]*Node{},
		owners:    map[string]*Node{},
		refused:   map[string]bool{},
		cut:       map[link]bool{},
		clogged:   map[link]bool{},
	}
}

// Now reports the global virtual time.
func (n *Network) Now() time.Time { return n.opt.Start.Add(n.now) }

// Rand returns the network's seeded source, for the caller's own choices.
// Drawing from it changes later jitter, so draw the same way in every run.
func (n *Network) Rand() *rand.Rand { return n.rng }

// SetTrace sets the function that receives one line per delivered event
// and per fault action; nil turns tracing off.
func (n *Network) SetTrace(w func(line string)) { n.trace = w }

// SetTraceWriter sets a writer that receives the same lines as SetTrace's
// function, each ending in a newline, from a reused buffer (no allocation
// per line); nil turns it off.
func (n *Network) SetTraceWriter(w io.Writer) { n.tw = w }

// SetDeliverHook sets a function that sees the bytes of every delivery
// (at: virtual time since the start) before the receiver's handler, for
// pictures and tools; it must not keep b or act on the network. It is not
// part of the trace.
func (n *Network) SetDeliverHook(f func(at time.Duration, conn uint64, from, to string, b []byte)) {
	n.seen = f
}

func (n *Network) tracing() bool { return n.trace != nil || n.tw != nil }

// Events reports the number of events processed.
func (n *Network) Events() uint64 { return n.stats.Events }

// Stats reports the counters.
func (n *Network) Stats() Stats { return n.stats }

// At schedules f to run as an event at t (or now, if t is past). Events at
// the same time run in the order they were scheduled.
func (n *Network) At(t time.Time, f func()) { n.schedule(t.Sub(n.opt.Start), f) }

// Step runs the next event and reports whether there was one.
func (n *Network) Step() bool {
	n.flush()
	if len(n.queue) == 0 {
		return false
	}
	ev := heap.Pop(&n.queue).(*event)
	n.now = ev.at
	n.stats.Events++
	ev.fn()
	n.flush()
	return true
}

// RunUntil runs every event due at or before t, then sets the clock to t.
func (n *Network) RunUntil(t time.Time) {
	d := t.Sub(n.opt.Start)
	for {
		n.flush()
		if len(n.queue) == 0 || n.queue[0].at > d {
			break
		}
		n.Step()
	}
	if d > n.now {
		n.now = d
	}
}

// RunFor runs events for d of virtual time from now.
func (n *Network) RunFor(d time.Duration) { n.RunUntil(n.Now().Add(d)) }

// schedule queues f at virtual offset at, never earlier than now.
func (n *Network) schedule(at time.Duration, f func()) {
	if at < n.now {
		at = n.now
	}
	n.seq++
	heap.Push(&n.queue, &event{at: at, seq: n.seq, fn: f})
}

// flush pumps the pipes that handlers wrote to, in the order they did.
func (n *Network) flush() {
	for i := 0; i < len(n.dirty); i++ {
		n.pump(n.dirty[i])
	}
	clear(n.dirty)
	n.dirty = n.dirty[:0]
}

// delay draws one one-way delay.
func (n *Network) delay() time.Duration {
	d := n.opt.Latency
	if n.opt.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.opt.Jitter)))
	}
	return d
}

// xmit is the time to put size bytes on the wire.
func (n *Network) xmit(size int) time.Duration {
	if n.opt.Bandwidth <= 0 || size == 0 {
		return 0
	}
	return time.Duration(int64(size) * int64(time.Second) / int64(n.opt.Bandwidth))
}

// tracef emits one trace line for who ("net" for network actions).
func (n *Network) tracef(who string, format string, args ...any) {
	if !n.tracing() {
		return
	}
	n.emit(fmt.Appendf(n.traceHead(who), format, args...))
}

// traceHead starts a line in n.tbuf: the time stamp and who.
func (n *Network) traceHead(who string) []byte {
	b := append(n.tbuf[:0], "t="...)
	b = appendPadded(b, uint64(n.now/time.Second), 6)
	b = append(b, '.')
	b = appendPadded(b, uint64(n.now%time.Second), 9)
	b = append(b, ' ')
	b = append(b, who...)
	return append(b, ' ')
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v uint64, width int) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// emit hands a finished line to the trace.
func (n *Network) emit(b []byte) {
	if n.trace != nil {
		n.trace(string(b))
	}
	if n.tw != nil {
		b = append(b, '\n')
		n.tw.Write(b)
	}
	n.tbuf = b[:0]
}

// traceData traces a delivery without fmt: it is most of the trace.
func (n *Network) traceData(who string, id uint64, from string, size int) {
	if !n.tracing() {
		return
	}
	b := append(n.traceHead(who), "data conn="...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, " from="...)
	b = append(b, from...)
	b = append(b, " n="...)
	n.emit(strconv.AppendInt(b, int64(size), 10))
}

// traceWord traces a line of one word (tick).
func (n *Network) traceWord(who, word string) {
	if !n.tracing() {
		return
	}
	n.emit(append(n.traceHead(who), word...))
}

// errName is the short name of a transport error in the trace.
func errName(err error) string {
	switch err {
	case transport.ErrReset:
		return "reset"
	case transport.ErrRefused:
		return "refused"
	case transport.ErrTimeout:
		return "timeout"
	case transport.ErrClosed:
		return "closed"
	}
	return "eof"
}

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// eventHeap orders events by (time, sequence number).
type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ev
}
