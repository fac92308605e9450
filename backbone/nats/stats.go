package nats

// Stats are a Bus's counters and state, safe to read at any time.
type Stats struct {
	// Connected reports a live connection to URL (a server, without
	// credentials; "" while down). LastError is the latest error nats.go
	// reported (a failed dial, a refused login, a lost connection).
	Connected bool   `json:"connected"`
	URL       string `json:"url"`
	LastError string `json:"last_error"`
	// Published counts messages handed to NATS (publishes, requests and
	// replies) and PublishedBytes their payloads; Received and
	// ReceivedBytes the messages delivered to the core (replies aside).
	Published      uint64 `json:"published"`
	PublishedBytes uint64 `json:"published_bytes"`
	Received       uint64 `json:"received"`
	ReceivedBytes  uint64 `json:"received_bytes"`
	// Dropped counts messages never handed to NATS: the outbox was full,
	// the first connection was not made yet, or nats.go refused them (its
	// reconnect buffer was full).
	Dropped uint64 `json:"dropped"`
	// Refused counts received messages dropped before the core saw them,
	// by reason: Oversized (over MaxMessage), ReplySubject (a reply
	// address outside InboxPrefix), Unauthenticated (forged, replayed,
	// stale or unsealed, with a pool key) and QueueFull (PendingBytes
	// were queued). PendingBytes is what the queue holds now.
	Oversized       uint64 `json:"refused_oversized"`
	ReplySubject    uint64 `json:"refused_reply_subject"`
	Unauthenticated uint64 `json:"refused_unauthenticated"`
	QueueFull       uint64 `json:"refused_queue_full"`
	PendingBytes    int64  `json:"pending_bytes"`
	// Authenticated reports a pool key.
	Authenticated bool `json:"authenticated"`
	// SlowConsumer counts times NATS began dropping messages the relay did
	// not take in time; SlowConsumerDrops the messages it dropped.
	SlowConsumer      uint64 `json:"slow_consumer"`
	SlowConsumerDrops uint64 `json:"slow_consumer_dropped"`
	// Connects, Reconnects and Disconnects count connection events.
	Connects    uint64 `json:"connects"`
	Reconnects  uint64 `json:"reconnects"`
	Disconnects uint64 `json:"disconnects"`
	// Requests counts requests; the next three count those that failed,
	// by reason.
	Requests             uint64 `json:"requests"`
	RequestsNoResponders uint64 `json:"requests_no_responders"`
	RequestsTimeout      uint64 `json:"requests_timed_out"`
	RequestsDown         uint64 `json:"requests_down"`
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
	b.rmu.Lock()
	st.PendingBytes = int64(b.rbytes)
	b.rmu.Unlock()
	st.Authenticated = b.auth != nil
	c := &b.st
	st.Oversized, st.ReplySubject = c.oversized.Load(), c.badReply.Load()
	st.Unauthenticated, st.QueueFull = c.unauthenticated.Load(), c.queueFull.Load()
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
