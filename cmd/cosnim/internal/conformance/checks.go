package conformance

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// check tests one numbered requirement of PROTOCOL.md.
type check struct {
	id   string
	what string
	run  func(k *kit) error
}

// checks run one after the other, in this order.
var checks = []check{
	{"§2.2", "a port answers a client of the wrong kind plainly", checkWrongKind},
	{"§3.1", "L == 0 is fatal Error 1", checkEmptyFrame},
	{"§3.2", "a frame over max-frame-size is fatal Error 3, on its length alone", checkTooLarge},
	{"§3.3", "unknown frame types are skipped", checkUnknownType},
	{"§3.4", "a non-minimal uvarint is fatal Error 1", checkLongUvarint},
	{"§3.5", "trailing bytes are fatal Error 1", checkTrailing},
	{"§3.6", "an empty entry is fatal Error 1", checkEmptyEntry},
	{"§4.1", "a Hello with the wrong magic is fatal Error 1", checkBadMagic},
	{"§4.2", "Welcome: a version in the client's range, each limit key once", checkWelcome},
	{"§4.3", "a Join on handle 0 gets non-fatal Error 5 on handle 0", checkHandleZero},
	{"§4.4", "a new channel's Joined says complete", checkComplete},
	{"§4.5", "Leave; a Leave for a handle not joined gets non-fatal Error 7", checkLeave},
	{"§4.11", "a Ping is answered by a Pong with its data", checkPing},
	{"§5.1", "no common version is fatal Error 2", checkVersion},
	{"§6.1", "a frame before Hello, unknown types included, is fatal Error 4", checkNoHello},
	{"§6.2", "every connection gets a fresh nonce and the relay's epoch", checkNonce},
	{"§6.3", "joins past max-channels get non-fatal Error 6, not a rate limit", checkChannelCap},
	{"§6.4", "a frame for a handle not joined gets non-fatal Error 7", checkUnknownHandle},
	{"§6.5", "a Join on a handle in use is fatal Error 1", checkHandleInUse},
	{"§6.6", "a second Join of one channel on a connection gets non-fatal Error 5", checkSameChannelTwice},
	{"§6.7", "a second Hello is fatal Error 1", checkSecondHello},
	{"§6.8", "a relay→client frame from a client is fatal Error 1", checkWrongDirection},
	{"§7.4", "a proof is checked against the nonce of its own connection", checkProof},
	{"§8.1", "an entry over max-entry-size is dropped alone with non-fatal Error 17", checkBadEntry},
	{"§9.1", "Announce is acked with its handle and seq, fanned out to the others, not echoed", checkFanout},
	{"§10.1", "catch-up of an empty channel", checkCatchUpNone},
	{"§10.2", "catch-up of a few entries: Delta before the Sync reply", checkCatchUpFew},
	{"§10.4", "catch-up of 20,000 entries in paced, multi-frame replies", checkCatchUpMany},
	{"§11.1", "join-rate: past the burst, fatal Error 8", checkJoinRate},
	{"§12.4", "after a fatal Error the relay closes", checkFatalCloses},
	{"§12.5", "a rescan when the cache evicts (only when cache-entries is small)", checkRescan},
}

// slowChecks wait on the relay's timers; they run beside the others.
var slowChecks = []check{
	{"§6.9", "no Hello within handshake-timeout is fatal Error 16", checkHandshakeTimeout},
	{"§12.1", "a silent connection is closed with fatal Error 11 after idle-timeout", checkIdle},
	{"§4.4", "a channel forgotten this epoch comes back incomplete, others stay complete", checkForgotten},
}

// drainChecks are the requirements checkDrain tests.
var drainChecks = []check{{id: "§4.13"}, {id: "§12.2"}, {id: "§12.3"}}

// tlsNotice is what a TLS port says to a plaintext client (§2.2).
const tlsNotice = "cosnim relay: this port expects TLS (tcps://)\n"

// tlsAlert is what a plaintext port says to a TLS client (§2.2): a fatal
// handshake_failure alert.
var tlsAlert = []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}

func checkWrongKind(k *kit) error {
	if k.opts.DialRaw == nil {
		return skipf("no raw dialer")
	}
	ctx, cancel := contextFor(k)
	defer cancel()
	nc, err := k.opts.DialRaw(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(k.opts.Timeout))
	var send []byte
	want := tlsAlert
	if k.opts.TLS {
		send = wire.Append(nil, wirepeer.HelloFrame("cosnim-conformance"))
		want = []byte(tlsNotice)
	} else {
		// The start of a TLS ClientHello record.
		send = []byte{0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03}
	}
	if _, err := nc.Write(send); err != nil {
		return err
	}
	got, err := io.ReadAll(nc)
	if err != nil && !isTimeout(err) && len(got) == 0 {
		return fmt.Errorf("got %v, want %q", err, want)
	}
	if string(got) != string(want) {
		return fmt.Errorf("got %q, want %q then close", got, want)
	}
	return nil
}

// afterHello runs f on a fresh, handshaken connection.
func afterHello(k *kit, f func(s *session) error) error {
	s, err := k.connect()
	if err != nil {
		return err
	}
	defer s.close()
	return f(s)
}

// fatalAfter sends b after Hello and wants a fatal Error code.
func fatalAfter(k *kit, b []byte, code wire.Code) error {
	return afterHello(k, func(s *session) error {
		if err := s.write(b); err != nil {
			return err
		}
		return s.expectError(code, true, 0)
	})
}

func checkEmptyFrame(k *kit) error { return fatalAfter(k, []byte{0, 0, 0, 0}, wire.CodeProtocol) }

func checkTooLarge(k *kit) error {
	return afterHello(k, func(s *session) error {
		l := uint32(s.p.MaxFrame() - 3) // L + 4 one byte over
		var h [5]byte
		binary.BigEndian.PutUint32(h[:], l)
		h[4] = byte(wire.TypePing)
		if err := s.write(h[:]); err != nil {
			return err
		}
		return s.expectError(wire.CodeFrameTooLarge, true, 0)
	})
}

func checkUnknownType(k *kit) error {
	return afterHello(k, func(s *session) error {
		if err := s.write(rawFrame(0x7f, []byte("from the future"))); err != nil {
			return err
		}
		return s.alive()
	})
}

func checkLongUvarint(k *kit) error {
	// Sync: handle, session, flags, no ranges, want count 0 as 0x80 0x00.
	p := []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x80, 0x00}
	return fatalAfter(k, rawFrame(wire.TypeSync, p), wire.CodeProtocol)
}

func checkTrailing(k *kit) error {
	return fatalAfter(k, rawFrame(wire.TypePing, make([]byte, 9)), wire.CodeProtocol)
}

func checkEmptyEntry(k *kit) error {
	keys := k.hub()
	return afterHello(k, func(s *session) error {
		if _, err := s.join(keys, 1); err != nil {
			return err
		}
		// Announce: handle 1, seq 1, one entry of length 0.
		p := []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0}
		if err := s.write(rawFrame(wire.TypeAnnounce, p)); err != nil {
			return err
		}
		return s.expectError(wire.CodeProtocol, true, 0)
	})
}

func checkBadMagic(k *kit) error {
	s, err := k.dial()
	if err != nil {
		return err
	}
	defer s.close()
	b := wire.Append(nil, wirepeer.HelloFrame("x"))
	b[wire.HeaderSize] = 'X'
	if err := s.write(b); err != nil {
		return err
	}
	return s.expectError(wire.CodeProtocol, true, 0)
}

func checkWelcome(k *kit) error {
	w := k.welcome
	if w.Version < 1 || w.Version > wire.Version {
		return fmt.Errorf("got Welcome version %d, outside the offered 1..%d", w.Version, wire.Version)
	}
	seen := map[wire.LimitKey]bool{}
	for _, l := range w.Limits {
		if seen[l.Key] {
			return fmt.Errorf("limit key %d (%s) advertised twice", l.Key, l.Key)
		}
		seen[l.Key] = true
	}
	return nil
}

func checkHandleZero(k *kit) error {
	keys := k.hub()
	return afterHello(k, func(s *session) error {
		if err := s.send(wirepeer.JoinFrame(keys, 0, s.w.Nonce)); err != nil {
			return err
		}
		if err := s.expectError(wire.CodeJoinDenied, false, 0); err != nil {
			return err
		}
		_, err := s.join(keys, 1)
		return err
	})
}

func checkComplete(k *kit) error {
	return afterHello(k, func(s *session) error {
		j, err := s.join(k.hub(), 1)
		if err != nil {
			return err
		}
		if j.Flags&wire.JoinedComplete == 0 || j.Cached != 0 {
			return fmt.Errorf("a brand-new channel: Joined cached %d, complete %v; want 0 and complete", j.Cached, j.Flags&wire.JoinedComplete != 0)
		}
		return nil
	})
}

// checkForgotten needs the relay to forget a channel, which takes its
// channel-idle-timeout: run only when that is short.
func checkForgotten(k *kit) error {
	idle, ok := k.limit(wire.LimitChannelIdleMillis)
	if !ok || idle > 30_000 {
		return skipf("channel-idle-timeout %d ms is over 30 s: the kit does not wait for the relay to forget a channel", idle)
	}
	old := k.hub()
	s, err := k.connect()
	if err != nil {
		return err
	}
	if _, err := s.join(old, 1); err != nil {
		s.close()
		return err
	}
	es, _ := seal(old, "forgotten", 1)
	if err := s.announce(1, es); err != nil {
		s.close()
		return err
	}
	s.close()
	// The relay looks at idle channels when its timer says; give it slack.
	time.Sleep(time.Duration(idle)*time.Millisecond + 2*time.Second)
	return afterHello(k, func(s *session) error {
		j, err := s.join(k.hub(), 1)
		if err != nil {
			return err
		}
		if j.Flags&wire.JoinedComplete == 0 {
			return errors.New("a brand-new channel created after the relay forgot another one says incomplete; complete is per channel")
		}
		j, err = s.join(old, 2)
		if err != nil {
			return err
		}
		if j.Flags&wire.JoinedComplete != 0 {
			if j.Cached == 1 {
				return skipf("the relay kept the idle channel past channel-idle-timeout plus 2 s")
			}
			return errors.New("a channel forgotten this epoch came back complete")
		}
		return nil
	})
}

func checkLeave(k *kit) error {
	return afterHello(k, func(s *session) error {
		if _, err := s.join(k.hub(), 3); err != nil {
			return err
		}
		if err := s.send(&wire.Leave{Handle: 3}); err != nil {
			return err
		}
		if err := s.send(&wire.Leave{Handle: 3}); err != nil {
			return err
		}
		if err := s.expectError(wire.CodeUnknownHandle, false, 3); err != nil {
			return fmt.Errorf("second Leave: %v", err)
		}
		_, err := s.join(k.hub(), 3) // the handle may be reused
		return err
	})
}

func checkPing(k *kit) error { return afterHello(k, func(s *session) error { return s.alive() }) }

func checkVersion(k *kit) error {
	s, err := k.dial()
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.send(&wire.Hello{MinVersion: 60000, MaxVersion: 60001, Agent: "future"}); err != nil {
		return err
	}
	return s.expectError(wire.CodeVersion, true, 0)
}

func checkNoHello(k *kit) error {
	for _, b := range [][]byte{wire.Append(nil, &wire.Ping{Data: 1}), rawFrame(0x7f, nil)} {
		s, err := k.dial()
		if err != nil {
			return err
		}
		if err := s.write(b); err != nil {
			s.close()
			return err
		}
		err = s.expectError(wire.CodeNoHello, true, 0)
		s.close()
		if err != nil {
			return fmt.Errorf("%v before Hello: %v", wire.Type(b[4]), err)
		}
	}
	return nil
}

func checkNonce(k *kit) error {
	a, b, err := k.pair()
	if err != nil {
		return err
	}
	defer a.close()
	defer b.close()
	switch {
	case a.w.Nonce == b.w.Nonce:
		return errors.New("two connections got the same join nonce")
	case a.w.Epoch != b.w.Epoch:
		return errors.New("two connections got different epochs")
	}
	return nil
}

func checkChannelCap(k *kit) error {
	limit, _ := k.limit(wire.LimitMaxChannels)
	if limit > 1024 {
		return skipf("max-channels %d is over 1024", limit)
	}
	n := int(limit)
	return afterHello(k, func(s *session) error {
		for i := range n + 1 {
			if err := s.send(wirepeer.JoinFrame(k.hub(), uint32(i+1), s.w.Nonce)); err != nil {
				return err
			}
		}
		var joined, capped int
		for joined+capped < n+1 {
			f, err := s.next()
			if err != nil {
				return fmt.Errorf("after %d Joined and %d Error 6 of %d joins: got %s", joined, capped, n+1, describe(err))
			}
			switch f := f.(type) {
			case *wire.Joined:
				joined++
			case *wire.Error:
				if f.Code != wire.CodeTooManyChannels || f.Fatal() {
					return fmt.Errorf("join %d of %d (max-channels %d): got %s, want Joined or non-fatal Error 6", joined+capped+1, n+1, n, frameText(f))
				}
				capped++
			}
		}
		if joined != n || capped != 1 {
			return fmt.Errorf("%d joins: %d Joined and %d Error 6, want %d and 1", n+1, joined, capped, n)
		}
		return s.alive()
	})
}

func checkUnknownHandle(k *kit) error {
	return afterHello(k, func(s *session) error {
		if err := s.send(&wire.Announce{Handle: 77, Seq: 1, Entries: [][]byte{{1}}}); err != nil {
			return err
		}
		if err := s.expectError(wire.CodeUnknownHandle, false, 77); err != nil {
			return err
		}
		return s.alive()
	})
}

func checkHandleInUse(k *kit) error {
	return afterHello(k, func(s *session) error {
		if _, err := s.join(k.hub(), 1); err != nil {
			return err
		}
		if err := s.send(wirepeer.JoinFrame(k.hub(), 1, s.w.Nonce)); err != nil {
			return err
		}
		return s.expectError(wire.CodeProtocol, true, 0)
	})
}

func checkSameChannelTwice(k *kit) error {
	keys := k.hub()
	return afterHello(k, func(s *session) error {
		if _, err := s.join(keys, 1); err != nil {
			return err
		}
		if err := s.send(wirepeer.JoinFrame(keys, 2, s.w.Nonce)); err != nil {
			return err
		}
		if err := s.expectError(wire.CodeJoinDenied, false, 2); err != nil {
			return err
		}
		return s.alive()
	})
}

func checkSecondHello(k *kit) error {
	return fatalAfter(k, wire.Append(nil, wirepeer.HelloFrame("again")), wire.CodeProtocol)
}

func checkWrongDirection(k *kit) error {
	for _, f := range []wire.Frame{&wire.Joined{Handle: 1}, &wire.Ack{Handle: 1}, &wire.Drain{}} {
		if err := fatalAfter(k, wire.Append(nil, f), wire.CodeProtocol); err != nil {
			return fmt.Errorf("%v from a client: %v", f.FrameType(), err)
		}
	}
	return nil
}

func checkProof(k *kit) error {
	other, err := k.connect()
	if err != nil {
		return err
	}
	defer other.close()
	keys := k.hub()
	return afterHello(k, func(s *session) error {
		// A proof made for the other connection's nonce.
		if err := s.send(wirepeer.JoinFrame(keys, 1, other.w.Nonce)); err != nil {
			return err
		}
		if err := s.expectError(wire.CodeJoinDenied, false, 1); err != nil {
			return err
		}
		_, err := s.join(keys, 1)
		return err
	})
}

func checkBadEntry(k *kit) error {
	max, _ := k.limit(wire.LimitMaxEntrySize)
	keys := k.hub()
	a, b, err := k.joinedPair(keys, 1, 5)
	if err != nil {
		return err
	}
	defer a.close()
	defer b.close()
	if int(max)+1+64 > a.p.MaxFrame() {
		return skipf("max-entry-size %d leaves no room in a frame for a larger entry", max)
	}
	good, _ := seal(keys, "good", 1)
	if err := a.send(&wire.Announce{Handle: 1, Seq: 9, Entries: [][]byte{make([]byte, max+1), good[0].Sealed}}); err != nil {
		return err
	}
	if err := a.expectError(wire.CodeBadEntry, false, 1); err != nil {
		return err
	}
	f, err := a.next()
	if ack, ok := f.(*wire.Ack); err != nil || !ok || ack.Seq != 9 {
		return fmt.Errorf("after the bad entry got %v %v, want Ack 9", f, err)
	}
	return b.wantDeliver(5, good)
}

// wantDeliver reads Deliver frames on handle until it has exactly es.
func (s *session) wantDeliver(handle uint32, es []roster.Entry) error {
	want := map[roster.ID]bool{}
	for _, e := range es {
		want[e.ID] = true
	}
	for len(want) > 0 {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("%d entries not delivered: %s", len(want), describe(err))
		}
		d, ok := f.(*wire.Deliver)
		if !ok {
			continue
		}
		if d.Handle != handle {
			return fmt.Errorf("got a Deliver on handle %d, want %d", d.Handle, handle)
		}
		for _, e := range d.Entries {
			id := roster.NewEntry(e).ID
			if !want[id] {
				return errors.New("delivered an entry not announced")
			}
			delete(want, id)
		}
	}
	return nil
}

func checkFanout(k *kit) error {
	keys := k.hub()
	a, b, err := k.joinedPair(keys, 2, 8)
	if err != nil {
		return err
	}
	defer a.close()
	defer b.close()
	es, _ := seal(keys, "fan", 3)
	if err := a.announce(2, es); err != nil {
		return err
	}
	if err := b.wantDeliver(8, es); err != nil {
		return err
	}
	// No echo: the announcer gets nothing but its Pong.
	data := uint64(42)
	if err := a.send(&wire.Ping{Data: data}); err != nil {
		return err
	}
	for {
		f, err := a.next()
		if err != nil {
			return fmt.Errorf("announcer: %s", describe(err))
		}
		switch f := f.(type) {
		case *wire.Deliver:
			return errors.New("the announcer got its own entries back")
		case *wire.Pong:
			if f.Data == data {
				return nil
			}
		}
	}
}

func checkJoinRate(k *kit) error {
	rate, ok := k.limit(wire.LimitJoinRate)
	chans, _ := k.limit(wire.LimitMaxChannels)
	if !ok || rate > 1000 || chans > 1000 {
		return skipf("join-rate %d or max-channels %d too large to pass from here", rate, chans)
	}
	keys := k.hub()
	return afterHello(k, func(s *session) error {
		// Good proofs, joined and left in turn: each join costs a token,
		// none holds a channel past the next, none is denied (so
		// max-denied-joins never closes first).
		limit := 10 * int(2*chans+rate)
		for i := range limit {
			if err := s.send(wirepeer.JoinFrame(keys, 1, s.w.Nonce)); err != nil {
				return err
			}
			f, err := s.next()
			if err != nil {
				return fmt.Errorf("join %d: %s", i+1, describe(err))
			}
			switch f := f.(type) {
			case *wire.Joined:
				if err := s.send(&wire.Leave{Handle: 1}); err != nil {
					return err
				}
				continue
			case *wire.Error:
				switch {
				case f.Code != wire.CodeRateLimited || !f.Fatal():
					return fmt.Errorf("join %d: got %s, want Joined or fatal Error 8", i+1, frameText(f))
				case i < int(chans):
					return fmt.Errorf("rate limited after %d joins, within max-channels %d", i, chans)
				}
				return s.expectEOF()
			default:
				return fmt.Errorf("join %d: got %s, want Joined or fatal Error 8", i+1, frameText(f))
			}
		}
		return fmt.Errorf("%d joins in a burst at join-rate %d were never rate limited", limit, rate)
	})
}

func checkFatalCloses(k *kit) error {
	return fatalAfter(k, rawFrame(wire.TypePing, nil), wire.CodeProtocol)
}

func checkHandshakeTimeout(k *kit) error {
	ms, ok := k.limit(wire.LimitHandshakeMillis)
	if !ok || ms > 15_000 {
		return skipf("handshake-timeout %d ms is over 15 s", ms)
	}
	s, err := k.dial()
	if err != nil {
		return err
	}
	defer s.close()
	s.deadlineIn(time.Duration(ms)*time.Millisecond + 3*time.Second)
	f, err := s.p.NextFrame()
	if err != nil {
		return fmt.Errorf("got %s, want fatal Error 16", describe(err))
	}
	if e, ok := f.(*wire.Error); !ok || e.Code != wire.CodeHandshakeTimout || !e.Fatal() {
		return fmt.Errorf("got %s, want fatal Error 16", frameText(f))
	}
	return nil
}

func checkIdle(k *kit) error {
	ms, ok := k.limit(wire.LimitIdleTimeoutMilli)
	if !ok || ms > 15_000 {
		return skipf("idle-timeout %d ms is over 15 s: the kit does not wait for it", ms)
	}
	s, err := k.connect()
	if err != nil {
		return err
	}
	defer s.close()
	s.deadlineIn(time.Duration(ms)*time.Millisecond + 3*time.Second)
	for {
		f, err := s.p.NextFrame() // Pings from the relay are not answered: silence
		if err != nil {
			return fmt.Errorf("got %s, want fatal Error 11", describe(err))
		}
		if e, ok := f.(*wire.Error); ok {
			if e.Code != wire.CodeIdle || !e.Fatal() {
				return fmt.Errorf("got %s, want fatal Error 11", frameText(e))
			}
			return nil
		}
	}
}

func checkRescan(k *kit) error {
	limit, _ := k.limit(wire.LimitCacheEntries)
	if limit > 25_000 {
		return skipf("cache-entries %d is over 25,000: the kit does not fill it", limit)
	}
	keys := k.hub()
	a, b, err := k.joinedPair(keys, 1, 1)
	if err != nil {
		return err
	}
	defer a.close()
	defer b.close()
	es, _ := seal(keys, "overflow", int(limit)+1)
	go a.announce(1, es) // b reads meanwhile
	for {
		f, err := b.next()
		if err != nil {
			return fmt.Errorf("got %s, want non-fatal Error 15 once the cache evicts", describe(err))
		}
		e, ok := f.(*wire.Error)
		switch {
		case !ok, e.Code == wire.CodeResync && !e.Fatal():
			continue
		case e.Code != wire.CodeRescan || e.Fatal() || e.Handle != 1:
			return fmt.Errorf("got %s, want non-fatal Error 15 on handle 1", frameText(e))
		}
		return nil
	}
}
