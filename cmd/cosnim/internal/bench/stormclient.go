package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// stormClient is one client of the reconnect storm.
type stormClient struct {
	k   *roster.Keys
	set roster.Set
	out []byte
}

// connect dials and joins.
func (sc *stormClient) connect(ctx context.Context, t Target, retries *atomic.Uint64) (*conn, error) {
	return connectRetry(ctx, t, 4<<10, sc.k, retries)
}

// announce sends the client's entries and waits for the Ack.
func (sc *stormClient) announce(c *conn) error {
	f := &wire.Announce{Handle: 1, Seq: 1}
	for _, e := range sc.set.Entries() {
		f.Entries = append(f.Entries, e.Sealed)
	}
	err := c.Send(f)
	if err == nil {
		err = c.Expect(wire.TypeAck, &wire.Ack{})
	}
	if err != nil {
		c.Close()
	}
	return err
}

// drain reads until the connection fails, keeping what it learns.
func (sc *stormClient) drain(c *conn) {
	var f wire.Deliver
	for {
		t, p, err := c.Next()
		if err != nil {
			return
		}
		if t == wire.TypeDeliver && f.DecodePayload(p) == nil {
			sc.learn(f.Entries)
		}
	}
}

func (sc *stormClient) learn(entries [][]byte) {
	for _, e := range entries {
		sc.set.Add(roster.NewEntry(append([]byte(nil), e...)))
	}
}

// stormSession is the catch-up session a storm client runs.
const stormSession = 1

// resync runs one catch-up session, answering the relay as client.Client
// does, until every message it sent has been answered.
func (sc *stormClient) resync(c *conn) error {
	outstanding, err := sc.sendSync(c, sc.set.StartSync())
	if err != nil {
		return err
	}
	var fs wire.Sync
	var fd wire.Delta
	var fv wire.Deliver
	for outstanding > 0 {
		t, p, err := c.Next()
		if err != nil {
			return fmt.Errorf("resync: %w", err)
		}
		switch t {
		case wire.TypeDeliver:
			if fv.DecodePayload(p) == nil {
				sc.learn(fv.Entries)
			}
		case wire.TypeDelta:
			if fd.DecodePayload(p) == nil {
				sc.learn(fd.Entries)
			}
		case wire.TypeError:
			return relayError(p)
		case wire.TypeSync:
			if err := fs.DecodePayload(p); err != nil {
				return err
			}
			more, err := sc.answer(c, &fs)
			if err != nil {
				return err
			}
			outstanding += more
		}
	}
	return nil
}

// answer replies to one Sync frame of the relay. It returns the change in
// messages awaiting the relay's answer.
func (sc *stormClient) answer(c *conn, fs *wire.Sync) (int, error) {
	more := 0
	if !fs.Msg.Empty() {
		out, give := sc.set.ReplySync(&fs.Msg)
		if err := sc.sendDelta(c, give); err != nil {
			return 0, err
		}
		n, err := sc.sendSync(c, out)
		if err != nil {
			return 0, err
		}
		if !out.Empty() {
			more += n
		}
	}
	if fs.Flags&wire.SyncMore == 0 {
		more-- // that message of ours is answered
	}
	return more, nil
}

// sendSync sends msg in as many frames as the relay's limit needs, and
// returns how many.
func (sc *stormClient) sendSync(c *conn, msg roster.SyncMsg) (int, error) {
	var n int
	sc.out, n = wire.AppendSyncSplit(sc.out[:0], &wire.Sync{Handle: 1, Session: stormSession, Msg: msg}, c.MaxFrame())
	return n, c.Write(sc.out)
}

func (sc *stormClient) sendDelta(c *conn, give []roster.Entry) error {
	if len(give) == 0 {
		return nil
	}
	if wire.EntriesFit(len(give), func(i int) int { return len(give[i].Sealed) }, c.MaxFrame()) < len(give) {
		return errors.New("bench: delta over the frame limit")
	}
	f := &wire.Delta{Handle: 1, Session: stormSession}
	for _, e := range give {
		f.Entries = append(f.Entries, e.Sealed)
	}
	return c.Send(f)
}
