package conformance

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cosnim/relays/wire"
)

// checkDrain makes the relay drain with Options.Drain and checks §4.13
// (alternates are relay URLs), §12.2 (Drain to every client, then fatal
// Error 12 to those still connected at the end of the grace) and §12.3
// (a connection made during the drain gets Error 12 after its Hello).
func (k *kit) checkDrain() map[string]error {
	res := map[string]error{}
	fail := func(err error) map[string]error {
		for _, c := range drainChecks {
			if _, ok := res[c.id]; !ok {
				res[c.id] = err
			}
		}
		return res
	}
	stay, err := k.connect()
	if err != nil {
		return fail(err)
	}
	defer stay.close()
	if _, err := stay.join(k.hub(), 1); err != nil {
		return fail(err)
	}
	leave, err := k.connect()
	if err != nil {
		return fail(err)
	}
	defer leave.close()
	if k.opts.Progress != nil {
		fmt.Fprintln(k.opts.Progress, "checking the drain: stop the relay now")
	}
	go k.opts.Drain()
	var drains []*wire.Drain
	for _, s := range []*session{stay, leave} {
		d, err := s.waitDrain(k.opts.DrainTimeout)
		if err != nil {
			return fail(fmt.Errorf("got %s, want a Drain", describe(err)))
		}
		drains = append(drains, d)
	}
	leave.close() // as a client honouring the Drain may
	res["§4.13"] = checkAlternates(drains[0].Alternates)
	// A newcomer during the drain.
	s, err := k.dial()
	if err != nil {
		res["§12.3"] = fmt.Errorf("connecting during the drain: %v, want Error 12 after Hello", err)
	} else {
		res["§12.3"] = func() error {
			defer s.close()
			if err := s.send(&wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: "cosnim-conformance"}); err != nil {
				return fmt.Errorf("sending Hello during the drain: %v", err)
			}
			return s.expectError(wire.CodeShuttingDown, true, 0)
		}()
	}
	// The one that stays is closed with Error 12 at the end of the grace.
	stay.deadlineIn(k.opts.DrainTimeout)
	for {
		f, err := stay.p.NextFrame()
		if err != nil {
			res["§12.2"] = fmt.Errorf("got %s, want fatal Error 12 at the end of the grace", describe(err))
			return res
		}
		if e, ok := f.(*wire.Error); ok {
			if e.Code != wire.CodeShuttingDown || !e.Fatal() {
				res["§12.2"] = fmt.Errorf("got %s, want fatal Error 12", frameText(e))
			} else {
				res["§12.2"] = stay.expectEOF()
			}
			return res
		}
		if p, ok := f.(*wire.Ping); ok {
			stay.p.Send(&wire.Pong{Data: p.Data})
		}
	}
}

// waitDrain reads until a Drain, answering Pings.
func (s *session) waitDrain(within time.Duration) (*wire.Drain, error) {
	s.deadlineIn(within)
	for {
		f, err := s.p.NextFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *wire.Drain:
			return f, nil
		case *wire.Ping:
			s.p.Send(&wire.Pong{Data: f.Data})
		case *wire.Error:
			return nil, errors.New(frameText(f))
		}
	}
}

// checkAlternates wants every alternate to be a relay URL (§2.1).
func checkAlternates(alts []string) error {
	if len(alts) == 0 {
		return skipf("the Drain named no alternates")
	}
	for _, a := range alts {
		u, err := url.Parse(a)
		if err != nil || (strings.ToLower(u.Scheme) != "tcp" && strings.ToLower(u.Scheme) != "tcps") || u.Hostname() == "" {
			return fmt.Errorf("alternate %q is not a tcp:// or tcps:// URL", a)
		}
	}
	return nil
}
