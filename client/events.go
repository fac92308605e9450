package client

import (
	"errors"
	"time"

	"github.com/cosnim/relays/internal/fault"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// Open reports the relay connection is up: the handshake starts.
func (c *Client) Open(tc transport.Conn, now time.Time) {
	if tc != c.conn {
		return
	}
	c.lastRecv = now
	c.send(&wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: c.cfg.Agent})
}

// Data handles bytes from the relay.
func (c *Client) Data(tc transport.Conn, b []byte, now time.Time) {
	if tc != c.conn {
		return
	}
	c.lastRecv = now
	c.stats.BytesIn += uint64(len(b))
	gen := c.gen
	err := c.rd.Feed(b, func(t wire.Type, p []byte) error {
		if c.gen != gen {
			return errStale
		}
		return c.handleFrame(t, p, now)
	})
	if err != nil && !errors.Is(err, errStale) && c.gen == gen {
		c.log.Warn("relay sent a bad frame", "err", err)
		c.fail(wire.CodeProtocol, err.Error(), now)
	}
}

var errStale = errors.New("client: connection replaced")

// Writable is not needed by the client: it sends little.
func (c *Client) Writable(transport.Conn, time.Time) {}

// Closed reports the link died or the dial failed.
func (c *Client) Closed(tc transport.Conn, err error, now time.Time) {
	if tc != c.conn {
		return
	}
	c.log.Info("relay connection lost", "relay", c.addrs[c.addrIdx], "err", err)
	c.lost(now, 0)
}

// Tick fires due timers.
func (c *Client) Tick(now time.Time) {
	for {
		t, ok := c.timers.PopDue(now)
		if !ok {
			return
		}
		switch t.kind {
		case tAntiEntropy:
			if c.state != Stopped {
				if t.ch.joined && t.ch.outstanding == 0 {
					c.startSync(t.ch)
				}
				c.timers.Add(now.Add(c.jitter(c.cfg.AntiEntropy)), t)
			}
			continue
		}
		if t.gen != c.gen {
			continue
		}
		switch t.kind {
		case tReconnect:
			c.dial(now)
		case tConnectDeadline:
			if c.state == Connecting {
				c.log.Info("relay connection timed out", "relay", c.addrs[c.addrIdx])
				c.drop(now)
			}
		case tPing:
			c.send(&wire.Ping{Data: uint64(now.UnixNano())})
			c.timers.Add(now.Add(c.hb), timer{kind: tPing, gen: c.gen})
		case tIdle:
			due := c.lastRecv.Add(c.idle)
			if !now.Before(due) {
				c.log.Info("relay went silent", "relay", c.addrs[c.addrIdx])
				c.drop(now)
			} else {
				c.timers.Add(due, timer{kind: tIdle, gen: c.gen})
			}
		}
	}
}

// Deadline reports the next timer.
func (c *Client) Deadline() (time.Time, bool) { return c.timers.Next() }

func (c *Client) dial(now time.Time) {
	c.gen++
	c.rd = wire.Reader{}
	c.setState(Connecting, now)
	c.conn = c.dialer.Dial(c.addrs[c.addrIdx])
	c.timers.Add(now.Add(c.cfg.ConnectTimeout), timer{kind: tConnectDeadline, gen: c.gen})
}

// drop closes the current connection and schedules a reconnect.
func (c *Client) drop(now time.Time) {
	if c.conn != nil {
		c.conn.Close()
	}
	c.lost(now, 0)
}

// fail tells the relay why, then drops the connection.
func (c *Client) fail(code wire.Code, text string, now time.Time) {
	c.send(&wire.Error{Code: code, Flags: wire.ErrorFatal, Text: text})
	c.drop(now)
}

// lost forgets the connection and schedules the next attempt: after delay
// if given (a drain), else after an exponential, jittered backoff.
func (c *Client) lost(now time.Time, delay time.Duration) {
	c.conn = nil
	c.gen++
	for _, ch := range c.channels {
		ch.joined = false
		ch.outstanding = 0
		ch.pushed, ch.barrier = false, 0
	}
	if c.state == Stopped {
		return
	}
	if delay == 0 {
		base := c.cfg.BackoffMin << min(c.attempt, 30)
		if base > c.cfg.BackoffMax || base <= 0 {
			base = c.cfg.BackoffMax
		}
		delay = base/2 + time.Duration(c.rng.Int64N(int64(base/2)+1))
		c.attempt++
		c.addrIdx = (c.addrIdx + 1) % len(c.addrs)
	}
	c.stats.Reconnects++
	c.setState(Disconnected, now)
	c.timers.Add(now.Add(delay), timer{kind: tReconnect, gen: c.gen})
}

func (c *Client) setState(s State, now time.Time) {
	if c.state != s {
		c.state = s
		c.obs.StateChanged(s, now)
	}
}

// jitter spreads a period by ±10% so that clients do not move in step.
func (c *Client) jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(c.rng.Int64N(spread))
}

func (c *Client) send(f wire.Frame) {
	if c.conn == nil {
		return
	}
	c.out = wire.Append(c.out[:0], f)
	c.sendRaw(c.out)
}

func (c *Client) sendRaw(b []byte) {
	if c.conn != nil && c.conn.Send(b) == nil {
		c.stats.BytesOut += uint64(len(b))
	}
}

func (c *Client) sendJoin(ch *channel) {
	pub, sig := ch.keys.JoinProof(c.nonce)
	c.send(&wire.Join{Handle: ch.handle, Channel: ch.id, Pub: pub, Sig: sig})
}

func (c *Client) startSync(ch *channel) {
	if _, ok := fault.Hit(c.cfg.Faults, FailNoSyncOnJoin); ok {
		return
	}
	ch.session++
	ch.outstanding = 1
	ch.pushed, ch.barrier = false, 0
	c.stats.Syncs++
	msg := ch.roster.StartSync()
	c.send(&wire.Sync{Handle: ch.handle, Session: ch.session, Msg: msg})
}

func (c *Client) channelOf(handle uint32) *channel {
	if handle == 0 || int(handle) > len(c.channels) {
		return nil
	}
	return c.channels[handle-1]
}

// learn adds entries from the relay that open with the channel's keys.
func (c *Client) learn(ch *channel, sealed [][]byte, now time.Time) {
	var refs [][]byte
	for _, s := range sealed {
		e := roster.NewEntry(s)
		if ch.roster.Has(e.ID) {
			continue
		}
		ref, err := ch.keys.Open(e)
		if err != nil {
			c.stats.Forged++
			continue
		}
		e.Sealed = append([]byte(nil), s...)
		ch.roster.Add(e)
		refs = append(refs, ref)
	}
	if len(refs) > 0 {
		c.stats.Learned += uint64(len(refs))
		c.obs.Learned(ch.id, refs, now)
	}
}
