package relayserver_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/fault/registry"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

// drainOutcome is what a client sees of a drain: the Drain's alternates,
// what a connection made during the drain got after its Hello, and what
// a client that stays got at the end of the grace.
type drainOutcome struct {
	alternates []string
	newcomer   error // nil: a fatal Error 12
	stayer     error // nil: a fatal Error 12, then EOF
}

func wantShuttingDown(p *wirepeer.Peer) error {
	f, err := p.NextFrame()
	if err != nil {
		return err
	}
	e, ok := f.(*wire.Error)
	if !ok || e.Code != wire.CodeShuttingDown || !e.Fatal() {
		return errors.New("not a fatal Error 12")
	}
	return nil
}

func runDrain(t *testing.T, points ...string) drainOutcome {
	fs := registry.New()
	for _, p := range points {
		if err := fs.Enable(p, "return(true)"); err != nil {
			t.Fatal(err)
		}
	}
	s := testrelay.Start(t, relayserver.Config{
		Relay:      relay.Config{Faults: fs},
		DrainAfter: time.Second, DrainGrace: 500 * time.Millisecond,
		DrainAlternates: []string{"tcps://relay-2.example:7420"},
	})
	addr := s.Addr().String()
	p, stopped, d := stopWithPeer(t, s)
	var out drainOutcome
	out.alternates = d.Alternates
	if _, err := rawPeer(t, addr, nil); err == nil {
		out.newcomer = errors.New("got a Welcome")
	} else if re := (*wirepeer.RemoteError)(nil); !errors.As(err, &re) || re.Frame.Code != wire.CodeShuttingDown || !re.Frame.Fatal() {
		out.newcomer = err
	}
	if out.stayer = wantShuttingDown(p); out.stayer == nil {
		if _, err := p.NextFrame(); !errors.Is(err, io.EOF) {
			out.stayer = errors.New("no EOF after Error 12")
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	return out
}

// A stopping relay (PROTOCOL §12.2) sends its alternates as URLs,
// answers a connection made during the drain Error 12 after its Hello,
// and ends the grace with Error 12 to a client still connected. The
// failpoints bring back what it did before: bare alternates, a refused
// connection, a bare close.
func TestDrainSequence(t *testing.T) {
	got := runDrain(t)
	if !slices.Equal(got.alternates, []string{"tcps://relay-2.example:7420"}) || got.newcomer != nil || got.stayer != nil {
		t.Fatalf("drain: alternates %q, newcomer %v, stayer %v; want the URL, Error 12, Error 12", got.alternates, got.newcomer, got.stayer)
	}
	old := runDrain(t, relay.FailOldDrain, relayserver.FailBareAlternates)
	if slices.Equal(old.alternates, got.alternates) || old.newcomer == nil || old.stayer == nil {
		t.Fatalf("the failpoints did not bring the old drain back: %+v", old)
	}
}
