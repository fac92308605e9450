package nats

import (
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/cosnim/relays/backbone"
)

// ErrNoURL is returned by New without a server URL.
var ErrNoURL = errors.New("backbone: no NATS server URL")

// deliverBatch is how many received messages one event hands the core at
// most, so one turn of the loop stays short.
const deliverBatch = 64

// Bus is a backbone.Bus over NATS. Build it with New, hand it to the core,
// then Start it with the core's event context; Close stops it.
type Bus struct {
	opt    Options
	log    *slog.Logger
	nopt   natsgo.Options
	inbox  string           // prefix of this Bus's reply subjects, "_INBOX.<nuid>."
	msgs   chan *natsgo.Msg // every subscription's messages: the hand-off (recv.go)
	kick   chan struct{}    // wakes the writer; capacity 1
	rkick  chan struct{}    // wakes the reader; capacity 1
	quit   chan struct{}    // closed by Close
	wg     sync.WaitGroup   // the writer, the pump and the reader
	flight sync.WaitGroup   // deliveries in progress
	auth   *auth            // nil without a pool key
	maxRaw int              // the largest message taken from NATS

	rmu    sync.Mutex // guards the receive queue
	rq     []*natsgo.Msg
	rbytes int // charged by rq and the batch being delivered

	mu       sync.Mutex // guards the following
	h        backbone.Handler
	run      func(func())
	started  bool
	closed   bool
	nc       *natsgo.Conn // nil until the first Connect returns
	inboxSub *natsgo.Subscription
	up       bool
	url      string // connected server, redacted
	lastErr  string
	outbox   []op
	queued   int // bytes in outbox and being sent
	// failed holds request ids to fail with ErrDown. Each must get its
	// Response, so it has no cap of its own: it holds at most the requests
	// the core made since the writer's last turn, which empties it.
	failed    []uint64
	wanted    map[string]bool                 // subjects the core subscribed to
	subs      map[string]*natsgo.Subscription // subjects the writer subscribed to
	pending   map[uint64]*request             // by token
	nextToken uint64
	goneDrops uint64 // slow-consumer drops of subscriptions since removed

	st counters
}

type op struct {
	subject, reply string
	data           []byte
}

type request struct {
	id    uint64
	timer *time.Timer
	// answered is set by the first reply: replies within
	// backbone.ReplyWindow after it are delivered too, then timer ends it.
	answered bool
}

// counters are read by Stats while the Bus runs.
type counters struct {
	published, publishedBytes atomic.Uint64
	received, receivedBytes   atomic.Uint64
	dropped                   atomic.Uint64
	oversized, badReply       atomic.Uint64
	unauthenticated           atomic.Uint64
	queueFull                 atomic.Uint64
	slowConsumer              atomic.Uint64
	connects, reconnects      atomic.Uint64
	disconnects               atomic.Uint64
	requests                  atomic.Uint64
	reqNoResponders           atomic.Uint64
	reqTimeout, reqDown       atomic.Uint64
}

var _ backbone.Bus = (*Bus)(nil)

// New checks o and loads its files; it does not connect (Start does).
func New(o Options) (*Bus, error) {
	if len(o.URLs) == 0 {
		return nil, ErrNoURL
	}
	for _, u := range o.URLs {
		if err := CheckURL(u); err != nil {
			return nil, errors.New("backbone: " + err.Error())
		}
	}
	o.setDefaults()
	b := &Bus{
		opt:     o,
		log:     o.Logger,
		inbox:   natsgo.NewInbox() + ".",
		msgs:    make(chan *natsgo.Msg, handoffMsgs),
		kick:    make(chan struct{}, 1),
		rkick:   make(chan struct{}, 1),
		maxRaw:  o.MaxMessage,
		quit:    make(chan struct{}),
		wanted:  map[string]bool{},
		subs:    map[string]*natsgo.Subscription{},
		pending: map[uint64]*request{},
	}
	if o.PoolKeyFile != "" {
		key, err := LoadPoolKey(o.PoolKeyFile)
		if err != nil {
			return nil, err
		}
		b.auth = newAuth(key)
		b.maxRaw += AuthOverhead
	}
	nopt, err := b.natsOptions()
	if err != nil {
		return nil, err
	}
	b.nopt = nopt
	return b, nil
}

// Start connects in the background and returns at once: the relay serves
// its local members while NATS is unreachable. h is the core; run must
// call its argument in the core's event context (and pull whatever the
// core leaves after an event), and do nothing once the core has stopped.
// Start may be called once.
func (b *Bus) Start(h backbone.Handler, run func(func())) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return
	}
	b.started, b.h, b.run = true, h, run
	b.wg.Add(3)
	go b.write()
	go b.pump()
	go b.read()
}

// Close stops the Bus: no event reaches the core once it returns.
// Requests still waiting get no Response. Close must not be called from
// inside the core's event context.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for _, r := range b.pending { // sorted: stops timers only
		r.timer.Stop()
	}
	clear(b.pending)
	b.mu.Unlock()
	close(b.quit)
	b.wg.Wait()
	b.flight.Wait()
}

// Subscribe implements backbone.Bus.
func (b *Bus) Subscribe(subject string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.wanted[subject] {
		b.wanted[subject] = true
		b.wakeLocked()
	}
}

// Unsubscribe implements backbone.Bus.
func (b *Bus) Unsubscribe(subject string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wanted[subject] {
		delete(b.wanted, subject)
		b.wakeLocked()
	}
}

// Publish implements backbone.Bus.
func (b *Bus) Publish(subject string, data []byte) { b.enqueue(subject, "", data) }

// Respond implements backbone.Bus. Replies go only to inboxes (admit
// drops requests naming anything else; this is the second lock).
func (b *Bus) Respond(reply string, data []byte) {
	if !strings.HasPrefix(reply, InboxPrefix) {
		b.st.dropped.Add(1)
		return
	}
	b.enqueue(reply, "", data)
}

// Request implements backbone.Bus. A request that cannot leave (the bus
// is down, the outbox is full, MaxRequests await replies) fails with
// backbone.ErrDown, delivered later as an event of its own.
func (b *Bus) Request(subject string, data []byte, id uint64) {
	b.st.requests.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if !b.up || len(b.pending) >= b.opt.MaxRequests || !b.fitsLocked(subject, data) {
		b.failed = append(b.failed, id)
		b.wakeLocked()
		return
	}
	b.nextToken++
	tok := b.nextToken
	b.pending[tok] = &request{id: id, timer: time.AfterFunc(b.opt.RequestTimeout, func() {
		b.finish(tok, nil, backbone.ErrTimeout)
	})}
	b.pushLocked(subject, b.inbox+strconv.FormatUint(tok, 10), data)
}

func (b *Bus) enqueue(subject, reply string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.nc == nil || !b.fitsLocked(subject, data) {
		b.st.dropped.Add(1)
		return
	}
	b.pushLocked(subject, reply, data)
}

func opSize(subject string, data []byte) int { return len(subject) + len(data) + 64 }

func (b *Bus) fitsLocked(subject string, data []byte) bool {
	return b.queued+opSize(subject, data) <= b.opt.OutboxBytes
}

func (b *Bus) pushLocked(subject, reply string, data []byte) {
	b.outbox = append(b.outbox, op{subject: subject, reply: reply, data: append([]byte(nil), data...)})
	b.queued += opSize(subject, data)
	b.wakeLocked()
}

func (b *Bus) wakeLocked() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// finish hands the core a reply or failure of the request of token: a
// failure or a timeout ends it; the first reply keeps it for the replies
// that arrive within backbone.ReplyWindow, then it ends without a word.
func (b *Bus) finish(tok uint64, data []byte, err error) {
	b.mu.Lock()
	r := b.pending[tok]
	switch {
	case r == nil:
	case r.answered && (err != nil || data == nil):
		delete(b.pending, tok) // the window is over (or a late failure)
		r = nil
	case err == nil && !r.answered:
		r.answered = true
		r.timer.Stop()
		r.timer = time.AfterFunc(backbone.ReplyWindow, func() { b.finish(tok, nil, backbone.ErrTimeout) })
	case err != nil:
		delete(b.pending, tok)
		r.timer.Stop()
	}
	b.mu.Unlock()
	if r == nil {
		return
	}
	b.countFailure(err)
	b.deliver(func(h backbone.Handler) { h.Response(r.id, data, err, time.Now()) })
}

func (b *Bus) countFailure(err error) {
	switch {
	case errors.Is(err, backbone.ErrNoResponders):
		b.st.reqNoResponders.Add(1)
	case errors.Is(err, backbone.ErrTimeout):
		b.st.reqTimeout.Add(1)
	case errors.Is(err, backbone.ErrDown):
		b.st.reqDown.Add(1)
	}
}

// deliver runs f on the core in its event context, unless the Bus is
// closed.
func (b *Bus) deliver(f func(h backbone.Handler)) {
	b.mu.Lock()
	if b.closed || b.run == nil {
		b.mu.Unlock()
		return
	}
	h, run := b.h, b.run
	b.flight.Add(1)
	b.mu.Unlock()
	defer b.flight.Done()
	run(func() { f(h) })
}

// write connects, then hands the outbox and subscription changes to
// nats.go until Close.
func (b *Bus) write() {
	defer b.wg.Done()
	nc := b.connect()
	if nc == nil {
		return
	}
	defer nc.Close()
	for {
		select {
		case <-b.quit:
			return
		case <-b.kick:
		}
		b.mu.Lock()
		ops, failed := b.outbox, b.failed
		b.outbox, b.failed = nil, nil
		add, remove := b.subDiffLocked()
		b.mu.Unlock()
		b.applySubs(nc, add, remove)
		for i, o := range ops {
			b.send(nc, o)
			b.mu.Lock()
			b.queued -= opSize(o.subject, o.data)
			b.mu.Unlock()
			ops[i] = op{}
		}
		for _, id := range failed {
			b.st.reqDown.Add(1)
			b.deliver(func(h backbone.Handler) { h.Response(id, nil, backbone.ErrDown, time.Now()) })
		}
	}
}

// connect makes the connection, retrying with backoff until it works or
// the Bus closes. With RetryOnFailedConnect, nats.go returns a connection
// that keeps trying on its own once the options are sound.
func (b *Bus) connect() *natsgo.Conn {
	for attempt := 1; ; attempt++ {
		nc, err := b.nopt.Connect()
		if err == nil {
			var sub *natsgo.Subscription
			if sub, err = nc.ChanSubscribe(b.inbox+"*", b.msgs); err == nil {
				sub.SetPendingLimits(-1, -1) // the shared channel is the bound
				b.mu.Lock()
				b.nc, b.inboxSub = nc, sub
				b.mu.Unlock()
				b.wakeLocked() // apply subscriptions made meanwhile
				return nc
			}
			nc.Close()
		}
		b.setErr(err)
		b.log.Warn("backbone: cannot connect; retrying", "err", err)
		select {
		case <-b.quit:
			return nil
		case <-time.After(b.reconnectDelay(attempt)):
		}
	}
}

// subDiffLocked lists the subjects to subscribe and unsubscribe, sorted.
func (b *Bus) subDiffLocked() (add, remove []string) {
	for s := range b.wanted { // sorted: below
		if b.subs[s] == nil {
			add = append(add, s)
		}
	}
	for s := range b.subs { // sorted: below
		if !b.wanted[s] {
			remove = append(remove, s)
		}
	}
	sort.Strings(add)
	sort.Strings(remove)
	return add, remove
}

func (b *Bus) applySubs(nc *natsgo.Conn, add, remove []string) {
	for _, s := range remove {
		b.mu.Lock()
		sub := b.subs[s]
		delete(b.subs, s)
		if n, err := sub.Dropped(); err == nil {
			b.goneDrops += uint64(n)
		}
		b.mu.Unlock()
		sub.Unsubscribe()
	}
	for _, s := range add {
		sub, err := nc.ChanSubscribe(s, b.msgs)
		if err != nil {
			b.setErr(err)
			b.log.Warn("backbone: subscribe failed", "subject", s, "err", err)
			continue
		}
		sub.SetPendingLimits(-1, -1)
		b.mu.Lock()
		b.subs[s] = sub
		b.mu.Unlock()
	}
}

func (b *Bus) send(nc *natsgo.Conn, o op) {
	data := o.data
	if b.auth != nil {
		data = b.auth.seal(o.subject, o.reply, data, time.Now())
	}
	err := nc.PublishMsg(&natsgo.Msg{Subject: o.subject, Reply: o.reply, Data: data})
	if err != nil {
		b.st.dropped.Add(1)
		if o.reply != "" {
			if tok, ok := b.token(o.reply); ok {
				b.finish(tok, nil, backbone.ErrDown)
			}
		}
		return
	}
	b.st.published.Add(1)
	b.st.publishedBytes.Add(uint64(len(o.data)))
}

// token parses a reply subject of this Bus's inbox.
func (b *Bus) token(subject string) (uint64, bool) {
	rest, ok := strings.CutPrefix(subject, b.inbox)
	if !ok {
		return 0, false
	}
	tok, err := strconv.ParseUint(rest, 10, 64)
	return tok, err == nil
}

func (b *Bus) setErr(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	b.lastErr = err.Error()
	b.mu.Unlock()
}

// Connection events from nats.go's callback goroutine.

func (b *Bus) onConnect(nc *natsgo.Conn) {
	b.st.connects.Add(1)
	b.checkPayload(nc)
	b.state(nc, true, "backbone connected")
}

func (b *Bus) onReconnect(nc *natsgo.Conn) {
	b.st.reconnects.Add(1)
	b.checkPayload(nc)
	b.state(nc, true, "backbone reconnected")
}

// checkPayload warns when the server takes messages larger than any the
// relays send: the Bus drops them, but only after nats.go has read them.
func (b *Bus) checkPayload(nc *natsgo.Conn) {
	if mp := nc.MaxPayload(); mp > int64(b.maxRaw) {
		b.log.Warn("backbone: NATS max_payload is larger than any relay message; lower it so that NATS refuses what relays drop",
			"max_payload", mp, "largest_relay_message", b.maxRaw)
	}
}

func (b *Bus) onDisconnect(nc *natsgo.Conn, err error) {
	b.mu.Lock()
	was := b.up
	b.mu.Unlock()
	if !was {
		b.setErr(err)
		return // a failed attempt, not a lost connection
	}
	b.st.disconnects.Add(1)
	b.setErr(err)
	b.state(nc, false, "backbone disconnected")
}

func (b *Bus) state(nc *natsgo.Conn, up bool, msg string) {
	b.mu.Lock()
	b.up = up
	b.url = ""
	if up {
		b.url = redact(nc.ConnectedUrlRedacted())
	}
	url, lastErr := b.url, b.lastErr
	b.mu.Unlock()
	if up {
		b.log.Info(msg, "url", url)
	} else {
		b.log.Warn(msg, "err", lastErr)
	}
	b.deliver(func(h backbone.Handler) { h.BusState(up, time.Now()) })
}

// onAttemptFailed reports a connection attempt that failed (refused,
// a bad certificate, a refused login); nats.go keeps trying.
func (b *Bus) onAttemptFailed(_ *natsgo.Conn, err error) {
	b.setErr(err)
	b.log.Warn("backbone: connection attempt failed; retrying", "err", err)
}

func (b *Bus) onError(nc *natsgo.Conn, sub *natsgo.Subscription, err error) {
	if errors.Is(err, natsgo.ErrSlowConsumer) {
		b.st.slowConsumer.Add(1)
		b.log.Warn("backbone: slow consumer; NATS drops messages the relay does not take in time",
			"pending", len(b.msgs))
		return
	}
	b.setErr(err)
	b.log.Warn("backbone: error", "err", err)
}
