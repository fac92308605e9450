package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// tap sits between the network and a client core: it reads what the relay
// sends on the client's current connection, before the core decrypts
// anything, and checks it (isolation, no echo, duplicates, no fabrication).
// It also keeps the connection's state as the checkers see it.
type tap struct {
	c       *simClient
	conn    transport.Conn // the core's connection, nil between connections
	gen     int            // connections opened so far
	relay   int            // relay incarnation conn was opened to
	resync  time.Time      // last Resync the relay sent on conn
	welcome time.Time      // Welcome on conn; zero before
	joined  []bool         // by index of c.chans, on conn
	caught  []time.Time    // latest CaughtUp on conn, by index of c.chans
	// overflows and overflowAt are the relay's pending overflows of each
	// channel's member on conn, and the latest one's time; resyncArmed
	// marks a resync check waiting (resync.go).
	overflows   []uint64
	overflowAt  []time.Time
	resyncArmed []bool
	rx          int                // bytes received from the relay on conn
	resyncAt    []time.Time        // last Resync for each channel index on conn
	resyncSeen  bool               // a Resync for a joined channel in this Data
	resyncs     []int              // Resyncs for each channel index since its Joined on conn
	causes      int                // Joined and Resync frames in this Data: syncs they allow
	sent        map[roster.ID]bool // entries this client announced on conn
	// syncFrom is, per channel index, what the relay's complete cache held
	// when the sync a Joined or a Resync starts began, and syncAt when;
	// judged at the CaughtUp that reports it (checkReport).
	syncFrom [][]roster.ID
	syncAt   []time.Time
	dups     map[roster.ID]uint8 // Deliver count per entry on conn
	rd       wire.Reader
	fr       wire.Frames
}

func newTap(c *simClient) *tap {
	n := len(c.chans)
	return &tap{c: c, joined: make([]bool, n), caught: make([]time.Time, n),
		overflows: make([]uint64, n), overflowAt: make([]time.Time, n), resyncArmed: make([]bool, n),
		resyncAt: make([]time.Time, n), resyncs: make([]int, n), syncFrom: make([][]roster.ID, n), syncAt: make([]time.Time, n)}
}

var _ transport.Handler = (*tap)(nil)

func (t *tap) Open(tc transport.Conn, now time.Time) {
	if tc == t.c.dialed.last && tc != t.conn {
		t.gen++
		t.conn = tc
		t.relay = t.c.w.relayGen
		t.welcome = time.Time{}
		clear(t.joined)
		clear(t.caught)
		clear(t.overflows)
		clear(t.overflowAt)
		clear(t.resyncArmed)
		clear(t.resyncAt)
		clear(t.resyncs)
		clear(t.syncFrom)
		t.rx = 0
		t.sent, t.dups = nil, nil
		t.rd = wire.Reader{Max: 1 << 24}
	}
	t.c.core.Open(tc, now)
}

func (t *tap) Data(tc transport.Conn, b []byte, now time.Time) {
	syncs := t.c.core.Stats().Syncs
	t.resyncSeen = false
	t.causes = 0
	if tc == t.conn {
		t.rx += len(b)
		if err := t.rd.Feed(b, t.frame); err != nil {
			t.c.w.violate("wire: %s got bytes from the relay that do not frame: %v", t.c.name, err)
			t.conn = nil
		}
	}
	t.c.core.Data(tc, b, now)
	t.c.w.noteDataSyncs(t.c, int(t.c.core.Stats().Syncs-syncs), t.causes)
	if t.resyncSeen && t.c.core.Stats().Syncs == syncs {
		t.c.w.checked[invResync]++
		t.c.w.violate("resync: %s was told to sync a channel again and started no sync", t.c.name)
	}
}

func (t *tap) Writable(tc transport.Conn, now time.Time) { t.c.core.Writable(tc, now) }
func (t *tap) Closed(tc transport.Conn, err error, now time.Time) {
	t.c.core.Closed(tc, err, now)
}
func (t *tap) Tick(now time.Time) {
	syncs := t.c.core.Stats().Syncs
	t.c.core.Tick(now)
	t.c.w.noteTickSyncs(t.c, int(t.c.core.Stats().Syncs-syncs))
}
func (t *tap) Deadline() (time.Time, bool) { return t.c.core.Deadline() }
func (t *tap) queued() int                 { return t.conn.Queued() + netsim.PeerQueued(t.conn) }
func (t *tap) connected() bool             { return t.conn != nil && !t.welcome.IsZero() }
func (t *tap) joinedIn(i int) bool         { return t.connected() && t.joined[i] }
func (t *tap) settledIn(i int) bool        { return t.joinedIn(i) && !t.caught[i].IsZero() }
func (t *tap) same(gen int) bool           { return t.gen == gen && t.connected() }
func (t *tap) lost()                       { t.conn = nil }
func (t *tap) announced(id roster.ID)      { t.sentSet()[id] = true }
func (t *tap) sentSet() map[roster.ID]bool {
	if t.sent == nil {
		t.sent = map[roster.ID]bool{}
	}
	return t.sent
}

// frame inspects one frame from the relay.
func (t *tap) frame(typ wire.Type, p []byte) error {
	switch typ {
	case wire.TypeWelcome, wire.TypeJoined, wire.TypeDeliver, wire.TypeDelta, wire.TypeError, wire.TypeDrain:
	default:
		return nil
	}
	f, err := t.fr.Decode(typ, p)
	if err != nil {
		t.c.w.violate("wire: %s got a %v frame it cannot decode: %v", t.c.name, typ, err)
		return nil
	}
	w := t.c.w
	switch f := f.(type) {
	case *wire.Welcome:
		t.welcome = w.net.Now()
		w.onWelcome(t.c, f)
	case *wire.Joined:
		i := int(f.Handle) - 1
		if i < 0 || i >= len(t.joined) {
			w.violate("handle mapping: %s got Joined for handle %d, which it never asked to join", t.c.name, f.Handle)
			return nil
		}
		if !t.joined[i] {
			t.causes++
			t.resyncs[i] = 0 // a new membership at the relay
		}
		t.joined[i] = true
		t.syncBegins(i)
		w.onJoined(t.c, i, f)
		w.scriptf("relay→%s joined %s cached=%d%s", t.c.name, t.chanName(i), f.Cached, completeFlag(f.Flags))
	case *wire.Deliver:
		t.entries("deliver", f.Handle, f.Entries)
	case *wire.Delta:
		t.entries("delta", f.Handle, f.Entries)
	case *wire.Error:
		if f.Code == wire.CodeResync {
			t.resync = w.net.Now()
			if i := int(f.Handle) - 1; i >= 0 && i < len(t.joined) && t.joined[i] {
				t.resyncAt[i] = t.resync
				t.resyncSeen = true
				t.causes++
				t.syncBegins(i)
				w.noteResync(t.c, i)
			}
		}
		w.scriptf("relay→%s error %v handle=%d", t.c.name, f.Code, f.Handle)
	case *wire.Drain:
		w.scriptf("relay→%s drain after=%dms", t.c.name, f.AfterMillis)
	}
	return nil
}

func completeFlag(flags uint8) string {
	if flags&wire.JoinedComplete != 0 {
		return " complete"
	}
	return " incomplete"
}

func (t *tap) chanName(i int) string { return fmt.Sprintf("ch%d", t.c.chans[i]) }

// entries checks entries a Deliver or Delta carries under handle: each must
// be one announced in the channel the handle names (isolation; no
// fabrication unless a forger is about), a Deliver must not echo the
// client's own announce on this connection, and a Deliver of one entry
// twice on one connection is a duplicate (allowed only once the relay's
// cache evicted, when an entry can come back as new).
func (t *tap) entries(kind string, handle uint32, sealed [][]byte) {
	w, c := t.c.w, t.c
	i := int(handle) - 1
	if i < 0 || i >= len(c.chans) {
		w.violate("handle mapping: %s got a %s for handle %d, which it never joined", c.name, kind, handle)
		return
	}
	ch := c.chans[i]
	var refs []string
	for _, s := range sealed {
		id, ok := w.bySealed[string(s)]
		info := w.entries[id]
		switch {
		case !ok && w.sc.Forger && ch == 0:
			refs = append(refs, "(forged)")
			continue // the forger's; the core must refuse it
		case !ok:
			w.violate("fabrication: %s got a %s in channel %d of an entry nobody announced", c.name, kind, ch)
			continue
		case info.ch != ch:
			w.violate("isolation: %s got a %s on handle %d (channel %d) carrying %s of channel %d", c.name, kind, handle, ch, info.ref, info.ch)
			continue
		}
		if t.relay == w.relayGen {
			w.relayHad(ch, id)
		}
		if w.script != nil {
			refs = append(refs, info.ref)
		}
		if kind != "deliver" {
			continue
		}
		if t.sent[id] && w.cacheComplete(ch) && !w.relisted[id] {
			w.violate("isolation: %s got its own announce %s echoed back", c.name, info.ref)
		}
		if t.dups == nil {
			t.dups = map[roster.ID]uint8{}
		}
		if n := t.dups[id]; n > 0 {
			w.dupDeliveries++
			if w.cacheComplete(ch) {
				w.violate("isolation: %s got %s delivered %d times on one connection with nothing evicted", c.name, info.ref, n+1)
			}
		}
		t.dups[id]++
	}
	if w.script != nil && len(refs) > 0 {
		w.scriptf("relay→%s %s ch%d %s", c.name, kind, ch, strings.Join(refs, " "))
	}
}

// syncBegins notes, as a Joined or a Resync for channel index i arrives
// (before the core acts on it and starts its sync), what the relay's
// cache holds: honest entries, and only from a cache that is complete.
func (t *tap) syncBegins(i int) {
	w := t.c.w
	ch := t.c.chans[i]
	t.syncFrom[i], t.syncAt[i] = nil, w.net.Now()
	if t.relay != w.relayGen || !w.cacheComplete(ch) {
		return
	}
	ids := []roster.ID{}
	for _, e := range w.relayCache(ch).Entries() {
		if _, honest := w.entries[e.ID]; honest {
			ids = append(ids, e.ID)
		}
	}
	t.syncFrom[i] = ids
}
