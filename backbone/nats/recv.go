package nats

import (
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/cosnim/relays/backbone"
)

// The receive path: nats.go's reader hands every subscription's messages
// to a channel of handoffMsgs; the pump takes each at once, drops what
// the core must never see (oversized, a reply address outside inboxes,
// failing the pool key) and queues the rest, bounded in bytes; the
// reader hands the queue to the core in batches. Since the pump does
// little, nats.go's reader keeps pace with the server, so nats-server has
// no reason to cut the relay as a slow consumer; what the relay cannot
// take is dropped here, and counted.

// handoffMsgs is the capacity of the channel nats.go delivers to. The
// pump empties it at once; past it nats.go drops (a slow consumer in
// this process), and each time it starts dropping its reader takes the
// connection's lock, which under a flood let nats-server cut the relay
// (measured: 8 gave 23 cuts in TestBusFlood's 20 s, 64 none).
const handoffMsgs = 64

// InboxPrefix starts every reply subject a Bus answers: nats.go's
// inboxes, which NATS permissions (allow_responses) are written for.
// A request naming any other reply subject is dropped, so that nobody can
// make relays publish on subjects of their choosing.
const InboxPrefix = "_INBOX."

// msgOverhead is what the queue charges for a message beyond its
// subject, reply and payload: the nats.go Msg and its slot.
const msgOverhead = 256

// deliverBytes bounds the payload bytes one event hands the core, with
// deliverBatch the count, so one turn of the loop stays short.
const deliverBytes = 256 << 10

func msgCost(m *natsgo.Msg) int { return len(m.Subject) + len(m.Reply) + len(m.Data) + msgOverhead }

// pump moves messages from the hand-off to the queue until Close.
func (b *Bus) pump() {
	defer b.wg.Done()
	for {
		select {
		case <-b.quit:
			return
		case m := <-b.msgs:
			b.admit(m)
		}
	}
}

// admit checks one message and queues it, or drops and counts it.
func (b *Bus) admit(m *natsgo.Msg) {
	if len(m.Data) > b.maxRaw {
		b.st.oversized.Add(1)
		return
	}
	_, reply := b.token(m.Subject)
	if reply && len(m.Data) == 0 && m.Header.Get(statusHdr) == noResponders {
		// From the server, so never authenticated (POOLS.md says why
		// NATS permissions keep others from publishing on inboxes).
		b.queue(m)
		return
	}
	if !reply {
		if m.Reply != "" && !strings.HasPrefix(m.Reply, InboxPrefix) {
			b.st.badReply.Add(1)
			return
		}
		b.mu.Lock()
		want := b.wanted[m.Sub.Subject]
		b.mu.Unlock()
		if !want {
			return
		}
	}
	if b.auth != nil {
		data, err := b.auth.open(m.Subject, m.Reply, m.Data, time.Now())
		if err != nil {
			b.st.unauthenticated.Add(1)
			return
		}
		m.Data = data
	}
	b.queue(m)
}

func (b *Bus) queue(m *natsgo.Msg) {
	cost := msgCost(m)
	b.rmu.Lock()
	if b.rbytes+cost > b.opt.PendingBytes {
		b.rmu.Unlock()
		b.st.queueFull.Add(1)
		return
	}
	b.rq = append(b.rq, m)
	b.rbytes += cost
	b.rmu.Unlock()
	select {
	case b.rkick <- struct{}{}:
	default:
	}
}

// take moves the queue's head, up to deliverBatch messages and
// deliverBytes of payload (at least one), into batch. Its bytes stay
// charged until release: the core holds them meanwhile.
func (b *Bus) take(batch []*natsgo.Msg) []*natsgo.Msg {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	n, bytes := 0, 0
	for n < len(b.rq) && n < deliverBatch && (n == 0 || bytes+len(b.rq[n].Data) <= deliverBytes) {
		bytes += len(b.rq[n].Data)
		n++
	}
	batch = append(batch, b.rq[:n]...)
	clear(b.rq[:n])
	b.rq = b.rq[n:]
	if len(b.rq) == 0 {
		b.rq = nil // let the array go
	}
	return batch
}

func (b *Bus) release(batch []*natsgo.Msg) {
	cost := 0
	for _, m := range batch {
		cost += msgCost(m)
	}
	b.rmu.Lock()
	b.rbytes -= cost
	b.rmu.Unlock()
}

// read hands the queue to the core, a batch per event.
func (b *Bus) read() {
	defer b.wg.Done()
	batch := make([]*natsgo.Msg, 0, deliverBatch)
	for {
		select {
		case <-b.quit:
			return
		case <-b.rkick:
		}
		for {
			batch = b.take(batch[:0])
			if len(batch) == 0 {
				break
			}
			b.handle(batch)
			b.release(batch)
			clear(batch)
		}
	}
}

// handle delivers one batch: replies complete their requests, other
// messages go to the core if it still wants their subject.
func (b *Bus) handle(batch []*natsgo.Msg) {
	var msgs []backbone.Msg
	for _, m := range batch {
		if tok, ok := b.token(m.Subject); ok {
			var err error
			data := m.Data
			if len(m.Data) == 0 && m.Header.Get(statusHdr) == noResponders {
				data, err = nil, backbone.ErrNoResponders
			}
			b.finish(tok, data, err)
			continue
		}
		b.mu.Lock()
		want := b.wanted[m.Sub.Subject]
		b.mu.Unlock()
		if !want {
			continue
		}
		b.st.received.Add(1)
		b.st.receivedBytes.Add(uint64(len(m.Data)))
		msgs = append(msgs, backbone.Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data})
	}
	if len(msgs) > 0 {
		b.deliver(func(h backbone.Handler) {
			now := time.Now()
			for _, m := range msgs {
				h.Message(m, now)
			}
		})
	}
}

// NATS answers a request nobody subscribes to with an empty message
// whose Status header is 503 (nats.go keeps these names unexported).
const (
	statusHdr    = "Status"
	noResponders = "503"
)
