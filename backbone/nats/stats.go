package nats

// Stats are a Bus's counters and state, safe to read at any time.
type Stats struct {
	// Connected reports a live connection to URL (a server, without
	// credentials; "" while down). LastError is the latest error nats.go
	// reported (a failed dial, a refused login, a lost connection).
	Connected bool
	URL       string
	LastError string
	// Published counts messages handed to NATS (publishes, requests and
	// replies) and PublishedBytes their payloads; Received and
	// ReceivedBytes the messages delivered to the core (replies aside).
	Published, PublishedBytes uint64
	Received, ReceivedBytes   uint64
	// Dropped counts messages never handed to NATS: the outbox was full,
	// the first connection was not made yet, or nats.go refused them (its
	// reconnect buffer was full).
	Dropped uint64
	// SlowConsumer counts times NATS began dropping messages the relay did
	// not take in time; SlowConsumerDrops the messages it dropped.
	SlowConsumer, SlowConsumerDrops uint64
	// Connects, Reconnects and Disconnects count connection events.
	Connects, Reconnects, Disconnects uint64
	// Requests counts requests; the next three count those that failed,
	// by reason.
	Requests             uint64
	RequestsNoResponders uint64
	RequestsTimeout      uint64
	RequestsDown         uint64
}

// Stats returns the Bus's counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	st := Stats{Connected: b.up, URL: b.url, LastError: b.lastErr, SlowConsumerDrops: b.goneDrops}
	for _, sub := range b.subs { // sorted: summed
		if n, err := sub.Dropped(); err == nil {
			st.SlowConsumerDrops += uint64(n)
		}
	}
	if b.inboxSub != nil {
		if n, err := b.inboxSub.Dropped(); err == nil {
			st.SlowConsumerDrops += uint64(n)
		}
	}
	b.mu.Unlock()
	c := &b.st
	st.Published, st.PublishedBytes = c.published.Load(), c.publishedBytes.Load()
	st.Received, st.ReceivedBytes = c.received.Load(), c.receivedBytes.Load()
	st.Dropped = c.dropped.Load()
	st.SlowConsumer = c.slowConsumer.Load()
	st.Connects, st.Reconnects, st.Disconnects = c.connects.Load(), c.reconnects.Load(), c.disconnects.Load()
	st.Requests = c.requests.Load()
	st.RequestsNoResponders = c.reqNoResponders.Load()
	st.RequestsTimeout, st.RequestsDown = c.reqTimeout.Load(), c.reqDown.Load()
	return st
}

// URLs returns the configured server URLs without credentials.
func (b *Bus) URLs() []string {
	out := make([]string, len(b.opt.URLs))
	for i, u := range b.opt.URLs {
		out[i] = redact(u)
	}
	return out
}
