package relayserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// waitTimeout bounds every wait; generous, since no test asserts timing.
const waitTimeout = 20 * time.Second

// testSecret is the continuum secret of every newAgent.
const testSecret = "test continuum secret"

func newAgent(t *testing.T, addr string, tc *tls.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Options{
		Addrs:      []string{addr},
		TLS:        tc,
		Secret:     []byte(testSecret),
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func refs(prefix string, from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, fmt.Appendf(nil, "%s-%03d", prefix, i))
	}
	return out
}

func known(t *testing.T, a *agent.Agent, hub string) []string {
	t.Helper()
	rs, err := a.Known(hub)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	slices.Sort(out)
	return out
}

func sortedStrings(rs [][]byte) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	slices.Sort(out)
	return out
}

// waitUnion waits until every agent holds exactly want in hub.
func waitUnion(t *testing.T, hub string, want [][]byte, agents ...*agent.Agent) {
	t.Helper()
	w := sortedStrings(want)
	for i, a := range agents {
		testutil.WaitFor(t, waitTimeout, fmt.Sprintf("agent %d to hold the union (%d entries)", i, len(w)), func() bool {
			return slices.Equal(known(t, a, hub), w)
		})
	}
}

func announceAll(t *testing.T, a *agent.Agent, hub string, rs [][]byte) {
	t.Helper()
	for _, r := range rs {
		if err := a.Announce(hub, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTwoClientsConverge(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := testpki.NewPKI(t)
	for _, tc := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{
		{"tcp", nil, nil},
		{"tls", serverConfig(t, p, false, nil), clientConfig(t, p, "", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testrelay.Start(t, relayserver.Config{TLS: tc.server})
			addr := s.Addr().String()
			a, b := newAgent(t, addr, tc.client), newAgent(t, addr, tc.client)
			for _, ag := range []*agent.Agent{a, b} {
				if err := ag.Join("hub-1"); err != nil {
					t.Fatal(err)
				}
				if err := ag.WaitCaughtUp(ctxT(t), "hub-1"); err != nil {
					t.Fatal(err)
				}
			}
			ra, rb := refs("a", 0, 25), refs("b", 0, 25)
			announceAll(t, a, "hub-1", ra)
			announceAll(t, b, "hub-1", rb)
			waitUnion(t, "hub-1", append(ra, rb...), a, b)
			// B's feed carried A's announcements.
			got := map[string]bool{}
			for len(got) < len(ra) {
				select {
				case l := <-b.Entries():
					if l.Hub != "hub-1" {
						t.Fatalf("got hub %q, want hub-1", l.Hub)
					}
					got[string(l.Ref)] = true
				case <-time.After(waitTimeout):
					t.Fatalf("B's feed got %d entries, want %d", len(got), len(ra))
				}
			}
			a.Close()
			b.Close()
			if err := s.Stop(); err != nil {
				t.Fatalf("Run returned %v, want nil", err)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := testpki.NewPKI(t)
	goodCert, goodKey, _ := p.CA.Issue(t, p.Dir, "good", testpki.Leaf{CN: "instance-1"})
	otherCert, otherKey, _ := p.OtherCA.Issue(t, p.Dir, "other", testpki.Leaf{CN: "instance-1"})
	expCert, expKey, _ := p.CA.Issue(t, p.Dir, "expired", testpki.Leaf{CN: "instance-1", Expired: true})
	strangerCert, strangerKey, _ := p.CA.Issue(t, p.Dir, "stranger", testpki.Leaf{CN: "stranger"})
	soonCert, soonKey, _ := p.CA.Issue(t, p.Dir, "soon", testpki.Leaf{CN: "instance-1", NotBefore: time.Now().Add(time.Hour)})
	twoCNCert, twoCNKey, twoCN := p.CA.Issue(t, p.Dir, "two-cn", testpki.Leaf{CN: "instance-1", ExtraCNs: []string{"attacker"}})
	if twoCN.Subject.CommonName != "instance-1" {
		t.Fatalf("the two-CN certificate's CommonName is %q; crypto/x509 no longer keeps the last", twoCN.Subject.CommonName)
	}

	s := testrelay.Start(t, relayserver.Config{TLS: serverConfig(t, p, true, []string{"CN=instance-1"})})
	addr := s.Addr().String()

	t.Run("accepted", func(t *testing.T) {
		a := newAgent(t, addr, clientConfig(t, p, goodCert, goodKey))
		if err := a.Join("h"); err != nil {
			t.Fatal(err)
		}
		if err := a.AnnounceAndWait(ctxT(t), "h", []byte("capsule-1")); err != nil {
			t.Fatalf("good client: %v", err)
		}
		a.Close()
	})
	for _, tc := range []struct {
		name, cert, key string
		reason          string
	}{
		{"no certificate", "", "", relayserver.TLSFailNoCertificate},
		{"other CA", otherCert, otherKey, relayserver.TLSFailUnknownCA},
		{"expired", expCert, expKey, relayserver.TLSFailExpired},
		{"not yet valid", soonCert, soonKey, relayserver.TLSFailNotYetValid},
		{"unauthorized subject", strangerCert, strangerKey, relayserver.TLSFailNotAuthorized},
		{"CN=attacker,CN=instance-1", twoCNCert, twoCNKey, relayserver.TLSFailSeveralCN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.TLSFailures()[tc.reason]
			// tcp.ClientTLSConfig sends the certificate even when the
			// relay's list of acceptable CAs does not name its issuer.
			cfg := clientConfig(t, p, tc.cert, tc.key)
			err := rawHandshake(t, addr, cfg)
			if err == nil {
				t.Fatal("handshake succeeded, want a refusal")
			}
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "remote error" {
				t.Fatalf("client error %v (%T): want the relay's TLS alert", err, err)
			}
			t.Logf("client sees: %v", err)
			testutil.WaitFor(t, waitTimeout, "the server to count "+tc.reason, func() bool {
				return s.TLSFailures()[tc.reason] == before+1
			})
		})
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
}

// rawPeer dials addr and completes the handshake as a bare wire peer,
// closed when the test ends.
// stopWithPeer connects a raw peer to s, stops s (Stop's result comes on
// stopped) and reads the Drain frame the peer gets.
func stopWithPeer(t *testing.T, s *testrelay.Server) (p *wirepeer.Peer, stopped chan error, d wire.Drain) {
	t.Helper()
	p, err := rawPeer(t, s.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped = make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	if err := p.Expect(wire.TypeDrain, &d); err != nil {
		t.Fatalf("no Drain frame: %v", err)
	}
	return p, stopped, d
}

func rawPeer(t *testing.T, addr string, cfg *tls.Config) (*wirepeer.Peer, error) {
	t.Helper()
	ctx := ctxT(t)
	nc, err := tcp.NetDialer(cfg)(ctx, addr)
	if err != nil {
		return nil, err
	}
	p := wirepeer.New(nc, 0)
	t.Cleanup(func() { p.Close() })
	p.Bound(ctx)
	if _, err := p.Handshake("test"); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// rawHandshake dials addr, sends Hello and reads the Welcome; it returns
// the first error.
func rawHandshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	p, err := rawPeer(t, addr, cfg)
	if err == nil {
		p.Close()
	}
	return err
}

func TestRestartLosesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	s1 := testrelay.Start(t, relayserver.Config{})
	addr := s1.Addr().String()
	a, b := newAgent(t, addr, nil), newAgent(t, addr, nil)
	for _, ag := range []*agent.Agent{a, b} {
		if err := ag.Join("hub"); err != nil {
			t.Fatal(err)
		}
	}
	var all [][]byte
	ra, rb := refs("a", 0, 20), refs("b", 0, 20)
	announceAll(t, a, "hub", ra)
	announceAll(t, b, "hub", rb)
	all = append(all, ra...)
	all = append(all, rb...)
	waitUnion(t, "hub", all, a, b)
	epoch1 := s1.Epoch()

	// Kill: connections are cut without a drain.
	s1.Close()
	if err := s1.Stop(); !errors.Is(err, relayserver.ErrServerClosed) {
		t.Fatalf("Run after Close returned %v, want ErrServerClosed", err)
	}
	testutil.WaitFor(t, waitTimeout, "both clients to notice", func() bool {
		return a.State() != client.Connected && b.State() != client.Connected
	})
	// Entries announced while no relay runs stay local until it returns.
	ra2, rb2 := refs("a", 20, 40), refs("b", 20, 40)
	announceAll(t, a, "hub", ra2)
	announceAll(t, b, "hub", rb2)
	all = append(all, ra2...)
	all = append(all, rb2...)

	s2 := testrelay.Start(t, relayserver.Config{Addr: addr})
	if s2.Epoch() == epoch1 {
		t.Fatal("restarted relay kept its epoch")
	}
	// More while the clients are reconnecting.
	ra3 := refs("a", 40, 50)
	announceAll(t, a, "hub", ra3)
	all = append(all, ra3...)
	waitUnion(t, "hub", all, a, b)
	for i, ag := range []*agent.Agent{a, b} {
		if e, ok := ag.Epoch(); !ok || e != s2.Epoch() {
			t.Fatalf("agent %d epoch %x, want the new relay's %x", i, e, s2.Epoch())
		}
	}
	a.Close()
	b.Close()
	s2.Stop()
}

func TestDrainOnShutdown(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testrelay.Start(t, relayserver.Config{
		DrainAfter: 5 * time.Millisecond, DrainJitter: 5 * time.Millisecond,
		DrainGrace: waitTimeout, DrainAlternates: []string{"tcps://relay-2.example:7420"},
	})
	addr := s.Addr().String()
	a := newAgent(t, addr, nil)
	if err := a.WaitConnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	p, stopped, d := stopWithPeer(t, s)
	if d.AfterMillis != 5 || d.JitterMillis != 5 || !slices.Equal(d.Alternates, []string{"tcps://relay-2.example:7420"}) {
		t.Fatalf("Drain %+v, want after 5 ms, jitter 5 ms, alternate tcps://relay-2.example:7420", d)
	}
	if !s.Draining() {
		t.Fatal("server not draining after sending Drain")
	}
	// The server waits for the raw connection (grace is long) until it
	// leaves, as a client honouring Drain does.
	p.Close()
	if err := <-stopped; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	a.Close()
}

func TestOperationsEndpoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := testrelay.Start(t, relayserver.Config{MetricsAddr: "127.0.0.1:0", DrainGrace: waitTimeout})
	a := newAgent(t, s.Addr().String(), nil)
	if err := a.Join("hub"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitCaughtUp(ctxT(t), "hub"); err != nil {
		t.Fatal(err)
	}
	b := newAgent(t, s.Addr().String(), nil) // a member to fan out to
	if err := b.Join("hub"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitCaughtUp(ctxT(t), "hub"); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs("m", 0, 3) {
		if err := a.AnnounceAndWait(ctxT(t), "hub", r); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}
	base := "http://" + s.MetricsAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	for _, want := range []string{
		"cosnim_relay_connections 2\n",
		"cosnim_relay_channels 1\n",
		"\ncosnim_relay_transport_parked_connections ",
		"cosnim_relay_fanout_seconds_count 3\n",
		"cosnim_relay_rate_limited_total 0\n",
		"cosnim_relay_entries_stored_total 3\n",
		`cosnim_relay_frames_total{direction="in",type="announce"} 3` + "\n",
		`cosnim_relay_frames_total{direction="out",type="ack"} 3` + "\n",
		`cosnim_relay_frame_bytes_total{direction="out",type="ack"} 39` + "\n",
		fmt.Sprintf(`cosnim_relay_info{epoch="%016x"} 1`, s.Epoch()),
		"cosnim_relay_up 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: status %d, want 200", code)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: status %d, want 200", code)
	}
	code, body = get("/status")
	var st relayserver.Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/status: status %d, %v: %s", code, err, body)
	}
	if st.Connections != 2 || st.Channels != 1 || st.EntriesIn != 3 || st.Delivered != 3 || st.Epoch != fmt.Sprintf("%016x", s.Epoch()) {
		t.Errorf("/status = %+v, want 2 connections, 1 channel, 3 entries stored and delivered, epoch %016x", st, s.Epoch())
	}

	// While draining (a raw connection holds the drain open) the relay is
	// healthy but not ready.
	p, stopped, _ := stopWithPeer(t, s)
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: status %d, want 503", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining: status %d, want 200", code)
	}
	p.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	hc.CloseIdleConnections()
}

func TestServerLogsListening(t *testing.T) {
	defer goleak.VerifyNone(t)
	var buf testutil.SyncBuffer
	s := testrelay.Start(t, relayserver.Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Msg   string
		Addr  string
		TLS   bool
		Epoch string
	}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "relay listening" {
			break
		}
	}
	if rec.Msg != "relay listening" || rec.Addr != s.Addr().String() || rec.Epoch != fmt.Sprintf("%016x", s.Epoch()) {
		t.Fatalf("listening log %+v; want addr %s, epoch %016x", rec, s.Addr(), s.Epoch())
	}
}

// --- test PKI ---

func serverConfig(t *testing.T, p *testpki.PKI, clientAuth bool, allowed []string) *tls.Config {
	t.Helper()
	ca := ""
	if clientAuth {
		ca = p.CA.File
	}
	cfg, _, err := tcp.ServerTLSConfig(p.ServerCert, p.ServerKey, ca, allowed)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientConfig(t *testing.T, p *testpki.PKI, certFile, keyFile string) *tls.Config {
	t.Helper()
	cfg, err := tcp.ClientTLSConfig(p.CA.File, certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
