package conformance

import (
	"errors"
	"fmt"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// exchange is what one reconciliation from the kit's side saw.
type exchange struct {
	deltaFrames int // Delta frames received
	moreFrames  int // Sync frames received with the more flag
	rounds      int // Sync frames received
}

// reconcile runs §10's exchange on handle from the kit's side, starting
// from set, until it ends; set then holds the union. It checks that the
// relay sends a message's Deltas before its Sync reply (§10.3), which the
// end of the exchange shows: nothing may arrive after it.
func (s *session) reconcile(handle, sess uint32, set *roster.Set) (exchange, error) {
	var ex exchange
	start := set.StartSync()
	outstanding, err := s.sendSync(handle, sess, &start)
	if err != nil {
		return ex, err
	}
	for outstanding > 0 {
		f, err := s.next()
		if err != nil {
			return ex, fmt.Errorf("exchange with %d replies outstanding: %s", outstanding, describe(err))
		}
		switch f := f.(type) {
		case *wire.Delta:
			if f.Handle != handle || f.Session != sess {
				return ex, fmt.Errorf("got a Delta for handle %d session %d, want %d and %d", f.Handle, f.Session, handle, sess)
			}
			ex.deltaFrames++
			for _, e := range f.Entries {
				e := roster.NewEntry(e)
				e.Sealed = append([]byte(nil), e.Sealed...)
				set.Add(e)
			}
		case *wire.Sync:
			if f.Handle != handle || f.Session != sess {
				return ex, fmt.Errorf("got a Sync for handle %d session %d, want %d and %d", f.Handle, f.Session, handle, sess)
			}
			ex.rounds++
			if f.Flags&wire.SyncMore != 0 {
				ex.moreFrames++
			} else {
				outstanding--
			}
			if f.Msg.Empty() {
				continue // nobody answers an empty Sync
			}
			out, give := set.ReplySync(&f.Msg)
			if err := s.sendEntries(handle, sess, give); err != nil {
				return ex, err
			}
			n, err := s.sendSync(handle, sess, &out)
			if err != nil {
				return ex, err
			}
			outstanding += n
		case *wire.Error:
			return ex, fmt.Errorf("during the exchange: %s", frameText(f))
		}
		if ex.rounds > 100_000 {
			return ex, errors.New("the exchange does not end")
		}
	}
	return ex, nil
}

// sendSync sends msg, split to fit, and returns how many non-empty frames
// went (each gets a reply). An empty msg goes as one empty frame.
func (s *session) sendSync(handle, sess uint32, msg *roster.SyncMsg) (int, error) {
	b, n := wire.AppendSyncSplit(nil, &wire.Sync{Handle: handle, Session: sess, Msg: *msg}, s.p.MaxFrame())
	if err := s.write(b); err != nil {
		return 0, err
	}
	if msg.Empty() {
		return 0, nil
	}
	return n, nil
}

func (s *session) sendEntries(handle, sess uint32, es []roster.Entry) error {
	for len(es) > 0 {
		n := wire.EntriesFit(len(es), func(i int) int { return len(es[i].Sealed) }, s.p.MaxFrame())
		if err := s.send(&wire.Delta{Handle: handle, Session: sess, Entries: sealedOf(es[:n])}); err != nil {
			return err
		}
		es = es[n:]
	}
	return nil
}

// quiet checks that nothing of the exchange arrives after its end.
func (s *session) quiet() error {
	data := uint64(7)
	if err := s.send(&wire.Ping{Data: data}); err != nil {
		return err
	}
	for {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("no Pong: %s", describe(err))
		}
		switch f := f.(type) {
		case *wire.Pong:
			if f.Data == data {
				return nil
			}
		case *wire.Delta, *wire.Sync:
			return fmt.Errorf("a %v arrived after the exchange ended: Deltas must come before their Sync reply", f.FrameType())
		}
	}
}

// catchUp fills a fresh channel with n entries from one member, and has a
// second member that holds own of its own reconcile with the relay. It
// checks that the second ends with the union, and that the relay then
// holds it too.
func catchUp(k *kit, n, own int) (exchange, error) {
	keys := k.hub()
	a, err := k.connect()
	if err != nil {
		return exchange{}, err
	}
	defer a.close()
	if _, err := a.join(keys, 1); err != nil {
		return exchange{}, err
	}
	es, err := seal(keys, "held", n)
	if err != nil {
		return exchange{}, err
	}
	if err := a.announce(1, es); err != nil {
		return exchange{}, err
	}
	a.close() // its Delivers of b's pushes would only fill its queue
	b, err := k.connect()
	if err != nil {
		return exchange{}, err
	}
	defer b.close()
	j, err := b.join(keys, 4)
	if err != nil {
		return exchange{}, err
	}
	if int(j.Cached) != n {
		return exchange{}, fmt.Errorf("got Joined cached %d, want the %d announced", j.Cached, n)
	}
	var set roster.Set
	mine, _ := seal(keys, "own", own)
	for _, e := range mine {
		set.Add(e)
	}
	b.deadlineIn(time.Minute)
	ex, err := b.reconcile(4, 1, &set)
	if err != nil {
		return ex, err
	}
	if set.Len() != n+own {
		return ex, fmt.Errorf("after the exchange the kit holds %d entries, want %d", set.Len(), n+own)
	}
	for _, e := range es {
		if !set.Has(e.ID) {
			return ex, errors.New("an announced entry did not come back in the exchange")
		}
	}
	if err := b.quiet(); err != nil {
		return ex, err
	}
	c, err := k.connect()
	if err != nil {
		return ex, err
	}
	defer c.close()
	if j, err = c.join(keys, 1); err != nil {
		return ex, err
	}
	if int(j.Cached) != n+own {
		return ex, fmt.Errorf("after the exchange the relay holds %d entries, want %d (the kit's pushes stored)", j.Cached, n+own)
	}
	return ex, nil
}

func checkCatchUpNone(k *kit) error {
	ex, err := catchUp(k, 0, 0)
	if err == nil && ex.deltaFrames != 0 {
		err = fmt.Errorf("%d Delta frames for an empty channel", ex.deltaFrames)
	}
	return err
}

func checkCatchUpFew(k *kit) error {
	ex, err := catchUp(k, 5, 3)
	if err == nil && ex.deltaFrames == 0 {
		err = errors.New("no Delta frames")
	}
	return err
}

func checkCatchUpMany(k *kit) error {
	limit, _ := k.limit(wire.LimitCacheEntries)
	if limit < 23_000 {
		return skipf("cache-entries %d is under the 23,000 the check needs", limit)
	}
	ex, err := catchUp(k, 20_000, 3_000)
	if err == nil && ex.deltaFrames < 2 {
		err = fmt.Errorf("20,000 entries came in %d Delta frames", ex.deltaFrames)
	}
	return err
}
