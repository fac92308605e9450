package relayserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/cosnim/relays/backbone"
	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/internal/testnats"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay"
)

const bbWait = 5 * time.Second

// standIn takes the core's place as the backbone's Handler, so that the
// driver's wiring (connect, events, metrics, status, logs) is tested
// whatever the core does with them.
type standIn struct{ events chan string }

func (c *standIn) Message(m backbone.Msg, _ time.Time) {
	c.events <- "msg " + m.Subject + " " + string(m.Data)
}
func (c *standIn) Response(uint64, []byte, error, time.Time) { c.events <- "resp" }
func (c *standIn) BusState(up bool, _ time.Time) {
	if up {
		c.events <- "up"
	} else {
		c.events <- "down"
	}
}

func (c *standIn) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case e := <-c.events:
		if e != want {
			t.Fatalf("got backbone event %q, want %q", e, want)
		}
	case <-time.After(bbWait):
		t.Fatalf("no backbone event within %v, want %q", bbWait, want)
	}
}

// runWithStandIn runs a Server with a backbone fed to a standIn, and
// stops it with stop or at the end of the test.
func runWithStandIn(t *testing.T, o natsbus.Options, log *slog.Logger) (s *Server, c *standIn, stop func()) {
	t.Helper()
	c = &standIn{events: make(chan string, 100)}
	attach, handler := attachBackbone, backboneHandler
	attachBackbone = func(*relay.Config, backbone.Bus, string) {}
	backboneHandler = func(*relay.Relay) (backbone.Handler, error) { return c, nil }
	t.Cleanup(func() { attachBackbone, backboneHandler = attach, handler })
	o.ReconnectMin, o.ReconnectMax = 20*time.Millisecond, 100*time.Millisecond
	var err error
	s, err = New(Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Logger: log, Backbone: &o})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(2 * bbWait):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-s.Listening():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(time.Second):
		t.Fatal("not listening within 1s: the backbone held up the listener")
	}
	return s, c, stop
}

func getStatus(t *testing.T, s *Server) Status {
	t.Helper()
	var st Status
	testutil.GetJSON(t, "http://"+s.MetricsAddr().String()+"/status", &st)
	if st.Backbone == nil {
		t.Fatal("/status has no backbone")
	}
	return st
}

func getMetrics(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBackboneWiring(t *testing.T) {
	defer goleak.VerifyNone(t)
	o := testnats.Options(t)
	o.Username, o.Password = "relay", "s3cret"
	srv := testnats.Start(t, o)
	var logs testutil.SyncBuffer
	s, c, stop := runWithStandIn(t, natsbus.Options{URLs: []string{srv.URL()}, User: "relay", Password: "s3cret"},
		slog.New(slog.NewTextHandler(&logs, nil)))
	c.expect(t, "up")

	st := getStatus(t, s)
	if !st.Backbone.Connected || st.Backbone.URL != srv.URL() || len(st.Backbone.URLs) != 1 || st.Backbone.URLs[0] != srv.URL() {
		t.Errorf("/status backbone = %+v, want connected to %s", st.Backbone, srv.URL())
	}
	if raw, _ := json.Marshal(st); strings.Contains(string(raw), "s3cret") {
		t.Errorf("/status shows the NATS password: %s", raw)
	}
	if m := getMetrics(t, s); !strings.Contains(m, "cosnim_relay_backbone_connected 1\n") {
		t.Errorf("/metrics lacks cosnim_relay_backbone_connected 1:\n%s", grepLines(m, "backbone"))
	}

	// Messages reach the Handler through the server.
	s.do(func(*relay.Relay) { s.bb.bus.Subscribe("cosnim.x") })
	nc, err := natsgo.Connect(srv.URL(), natsgo.UserInfo("relay", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	testutil.WaitFor(t, bbWait, "a message through the relay server", func() bool {
		nc.Publish("cosnim.x", []byte("hi"))
		select {
		case e := <-c.events:
			return e == "msg cosnim.x hi"
		case <-time.After(20 * time.Millisecond):
			return false
		}
	})
	nc.Close()

	srv.Stop()
	c.expect(t, "down")
	if st := getStatus(t, s); st.Backbone.Connected || st.Backbone.LastError == "" {
		t.Errorf("/status backbone after NATS stopped = %+v, want down with an error", st.Backbone)
	}
	if m := getMetrics(t, s); !strings.Contains(m, "cosnim_relay_backbone_connected 0\n") ||
		!strings.Contains(m, `cosnim_relay_backbone_connection_events_total{event="disconnect"} 1`) {
		t.Errorf("/metrics after NATS stopped:\n%s", grepLines(m, "backbone"))
	}
	srv = srv.Restart()
	c.expect(t, "up")
	if m := getMetrics(t, s); !strings.Contains(m, `cosnim_relay_backbone_connection_events_total{event="reconnect"} 1`) ||
		!strings.Contains(m, `cosnim_relay_backbone_messages_total{direction="in"} `) {
		t.Errorf("/metrics after NATS came back:\n%s", grepLines(m, "backbone"))
	}
	for _, line := range []string{"backbone connected", "backbone disconnected", "backbone reconnected"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("logs lack %q:\n%s", line, logs.String())
		}
	}
	// Stopping the relay closes the driver: nothing of it is left.
	stop()
	srv.Stop()
}

// TestBackboneUnreachable: with NATS down from the start the relay listens
// at once (runWithStandIn checks) and reports why in /status.
func TestBackboneUnreachable(t *testing.T) {
	o := testnats.Options(t)
	o.Username, o.Password = "relay", "s3cret"
	srv := testnats.Start(t, o)
	for name, opt := range map[string]natsbus.Options{ // sorted: each case alone
		"nothing listens": {URLs: []string{"nats://" + testutil.FreeAddr(t)}},
		"wrong password":  {URLs: []string{srv.URL()}, User: "relay", Password: "wrong"},
	} {
		t.Run(name, func(t *testing.T) {
			var logs testutil.SyncBuffer
			s, c, _ := runWithStandIn(t, opt, slog.New(slog.NewTextHandler(&logs, nil)))
			testutil.WaitFor(t, bbWait, "the failure in /status", func() bool {
				return getStatus(t, s).Backbone.LastError != ""
			})
			st := getStatus(t, s)
			if st.Backbone.Connected {
				t.Errorf("/status says connected: %+v", st.Backbone)
			}
			if name == "wrong password" && !strings.Contains(strings.ToLower(st.Backbone.LastError), "authorization violation") {
				t.Errorf("/status last_error %q does not name the refused login", st.Backbone.LastError)
			}
			if !strings.Contains(logs.String(), "backbone: connection attempt failed") {
				t.Errorf("logs lack the failed attempt:\n%s", logs.String())
			}
			select {
			case e := <-c.events:
				t.Errorf("backbone event %q while NATS was unreachable", e)
			default:
			}
		})
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
