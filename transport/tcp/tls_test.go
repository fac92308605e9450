package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/transport"
)

// serveTLS runs a Loop whose core greets every connection with "hi".
func serveTLS(t *testing.T, cfg *tls.Config, logs *logBuf) string {
	t.Helper()
	h := &funcHandler{open: func(c transport.Conn) { c.Send([]byte("hi")) }}
	l := NewLoop(h, LoopOptions{Logger: logs.logger()})
	raw := listen(t)
	serve(t, l, tls.NewListener(SniffListener(raw, true, logs.logger()), cfg))
	return raw.Addr().String()
}

// greet dials with cfg and reads the greeting.
func greet(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	nc, err := NetDialer(cfg)(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(waitLong))
	b := make([]byte, 2)
	if _, err := io.ReadFull(nc, b); err != nil {
		// With TLS 1.3 a refused client certificate shows up here.
		return nil, err
	}
	if string(b) != "hi" {
		return nil, errors.New("bad greeting " + string(b))
	}
	cs := nc.(*tls.Conn).ConnectionState()
	return &cs, nil
}

func TestMutualTLS(t *testing.T) {
	p := testpki.NewPKI(t)
	goodCert, goodKey, _ := p.CA.Issue(t, p.Dir, "good", testpki.Leaf{CN: "good-client"})
	byFPCert, byFPKey, byFP := p.CA.Issue(t, p.Dir, "byfp", testpki.Leaf{CN: "listed-by-fingerprint"})
	otherCert, otherKey, _ := p.OtherCA.Issue(t, p.Dir, "other", testpki.Leaf{CN: "good-client"})
	expCert, expKey, _ := p.CA.Issue(t, p.Dir, "expired", testpki.Leaf{CN: "good-client", Expired: true})
	strangerCert, strangerKey, _ := p.CA.Issue(t, p.Dir, "stranger", testpki.Leaf{CN: "stranger"})

	allowed := []string{"CN=good-client", strings.ToUpper(Fingerprint(byFP))}
	cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, p.CA.File, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	logs := &logBuf{}
	addr := serveTLS(t, cfg, logs)

	tests := []struct {
		name            string
		cert, key       string
		clientErr       string // "" means accepted
		serverLogDetail string
	}{
		{name: "good by common name", cert: goodCert, key: goodKey},
		{name: "good by fingerprint", cert: byFPCert, key: byFPKey},
		{name: "no certificate", clientErr: "certificate required", serverLogDetail: "client didn't provide a certificate"},
		// ClientTLSConfig sends its certificate even though the server
		// did not name its CA.
		{name: "other CA", cert: otherCert, key: otherKey, clientErr: "unknown certificate authority", serverLogDetail: "signed by unknown authority"},
		{name: "expired", cert: expCert, key: expKey, clientErr: "expired certificate", serverLogDetail: "expired"},
		{name: "unauthorized subject", cert: strangerCert, key: strangerKey, clientErr: "bad certificate", serverLogDetail: "CN=stranger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.String())
			ccfg := clientConfig(t, p, tt.cert, tt.key)
			_, err := greet(addr, ccfg)
			if tt.clientErr == "" {
				if err != nil {
					t.Fatalf("client refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("client accepted, want refused")
			}
			if !strings.Contains(err.Error(), tt.clientErr) {
				t.Errorf("client error %q does not say %q", err, tt.clientErr)
			}
			testutil.WaitFor(t, waitLong, "server log", func() bool {
				return strings.Contains(logs.String()[before:], tt.serverLogDetail)
			})
			if !strings.Contains(logs.String()[before:], "TLS handshake failed") {
				t.Errorf("server log lacks the handshake failure: %s", logs.String()[before:])
			}
		})
	}
	if !strings.Contains(logs.String(), "not in the allowed list") {
		t.Errorf("server log does not name the allowed list: %s", logs.String())
	}
}

// TestSeveralCommonNames: with client certificates asked for and no
// allowed list, a certificate with two common names is still refused.
func TestSeveralCommonNames(t *testing.T) {
	p := testpki.NewPKI(t)
	oneCert, oneKey, _ := p.CA.Issue(t, p.Dir, "one", testpki.Leaf{CN: "instance-1"})
	twoCert, twoKey, _ := p.CA.Issue(t, p.Dir, "two", testpki.Leaf{CN: "instance-1", ExtraCNs: []string{"attacker"}})
	cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, p.CA.File, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	addr := serveTLS(t, cfg, logs)
	if _, err := greet(addr, clientConfig(t, p, oneCert, oneKey)); err != nil {
		t.Fatalf("one common name: %v", err)
	}
	if _, err := greet(addr, clientConfig(t, p, twoCert, twoKey)); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("two common names: %v, want bad certificate", err)
	}
	testutil.WaitFor(t, waitLong, "server log", func() bool {
		return strings.Contains(logs.String(), `several common names: [\"attacker\" \"instance-1\"]`)
	})
}

func TestCertificateReload(t *testing.T) {
	p := testpki.NewPKI(t)
	cfg, reloader, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	reloader.interval = 0 // check on every handshake
	logs := &logBuf{}
	reloader.SetLogger(logs.logger())
	addr := serveTLS(t, cfg, logs)
	client := clientConfig(t, p, "", "")
	client.ClientSessionCache = nil // a resumed session would skip the certificate

	serial := func() string {
		t.Helper()
		cs, err := greet(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return cs.PeerCertificates[0].SerialNumber.String()
	}
	if got, want := serial(), p.Server.SerialNumber.String(); got != want {
		t.Fatalf("first certificate serial %s, want %s", got, want)
	}

	// Replace the files in place: new connections see the new pair.
	_, _, next := p.CA.Issue(t, p.Dir, "server", testpki.Leaf{CN: "relay", Server: true})
	if got, want := serial(), next.SerialNumber.String(); got != want {
		t.Fatalf("after replacing the files: serial %s, want %s", got, want)
	}

	// A broken pair is refused: the last good one stays in service.
	if err := os.WriteFile(p.ServerKey, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := serial(), next.SerialNumber.String(); got != want {
		t.Fatalf("after breaking the key: serial %s, want the old %s", got, want)
	}
	if reloader.Err() == nil {
		t.Error("Err() = nil after a failed reload")
	}
	if !strings.Contains(logs.String(), "reload failed") {
		t.Errorf("failed reload not logged: %s", logs.String())
	}

	// A certificate file swapped for a link to /dev/zero is refused
	// before it is read (it would fill memory).
	if err := os.Remove(p.ServerCert); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", p.ServerCert); err != nil {
		t.Fatal(err)
	}
	if got, want := serial(), next.SerialNumber.String(); got != want {
		t.Fatalf("after linking the certificate to /dev/zero: serial %s, want the old %s", got, want)
	}
	if err := reloader.Err(); !errors.Is(err, files.ErrNotRegular) {
		t.Errorf("Err() = %v, want files.ErrNotRegular", err)
	}
}

func TestCertReloaderChecksAtMostOncePerInterval(t *testing.T) {
	p := testpki.NewPKI(t)
	r, err := NewCertReloader(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	r.checked = now
	p.CA.Issue(t, p.Dir, "server", testpki.Leaf{CN: "relay", Server: true})
	c1, _ := r.GetCertificate(nil)
	if c1.Leaf.SerialNumber.Cmp(p.Server.SerialNumber) != 0 {
		t.Fatal("reloaded before the interval passed")
	}
	now = now.Add(reloadInterval)
	c2, _ := r.GetCertificate(nil)
	if c2.Leaf.SerialNumber.Cmp(p.Server.SerialNumber) == 0 {
		t.Fatal("did not reload once the interval passed")
	}
}

func TestProtocolMismatch(t *testing.T) {
	p := testpki.NewPKI(t)
	t.Run("TLS client on plaintext port", func(t *testing.T) {
		logs := &logBuf{}
		closed := make(chan error, 1)
		h := &funcHandler{closed: func(c transport.Conn, err error) { closed <- err }}
		l := NewLoop(h, LoopOptions{Logger: logs.logger()})
		ln := listen(t)
		serve(t, l, SniffListener(ln, false, logs.logger()))

		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_, err := NetDialer(clientConfig(t, p, "", ""))(ctx, ln.Addr().String())
		if !errors.Is(err, ErrProtocolMismatch) || !strings.Contains(err.Error(), "use tcp://") {
			t.Errorf("client error = %v, want ErrProtocolMismatch saying use tcp://", err)
		}
		if err := <-closed; !errors.Is(err, ErrProtocolMismatch) {
			t.Errorf("server core Closed with %v, want ErrProtocolMismatch", err)
		}
		if !strings.Contains(logs.String(), "TLS client on plaintext port") {
			t.Errorf("server log = %q, want it to name the TLS client", logs.String())
		}
	})

	t.Run("plaintext client on TLS port", func(t *testing.T) {
		cfg, _, err := ServerTLSConfig(p.ServerCert, p.ServerKey, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		logs := &logBuf{}
		addr := serveTLS(t, cfg, logs)

		closed := make(chan error, 1)
		var data []byte
		h := &funcHandler{
			open:   func(c transport.Conn) { c.Send([]byte("COSNIM hello")) },
			data:   func(c transport.Conn, b []byte) { data = append(data, b...) },
			closed: func(c transport.Conn, err error) { closed <- err },
		}
		cl := NewLoop(h, LoopOptions{})
		defer cl.Close()
		cl.Do(func() { cl.Dialer(NetDialer(nil)).Dial(addr) })
		select {
		case err := <-closed:
			if !errors.Is(err, ErrProtocolMismatch) || !strings.Contains(err.Error(), "expects TLS; use tcps://") {
				t.Errorf("client Closed with %v, want ErrProtocolMismatch saying use tcps://", err)
			}
		case <-time.After(waitLong):
			t.Fatal("client never saw Closed")
		}
		cl.Do(func() {
			if len(data) != 0 {
				t.Errorf("client core got %q as data, want the notice consumed", data)
			}
		})
		testutil.WaitFor(t, waitLong, "server log", func() bool { return strings.Contains(logs.String(), "plaintext client on TLS port") })
	})

	t.Run("TLS client meets a plaintext server that speaks first", func(t *testing.T) {
		ln := listen(t)
		defer ln.Close()
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			nc.Write([]byte("COSNIM relay hello\n"))
			nc.SetReadDeadline(time.Now().Add(waitLong))
			io.Copy(io.Discard, nc)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_, err := NetDialer(clientConfig(t, p, "", ""))(ctx, ln.Addr().String())
		if !errors.Is(err, ErrProtocolMismatch) || !strings.Contains(err.Error(), "speaks plaintext; use tcp://") {
			t.Errorf("client error = %v, want ErrProtocolMismatch saying the relay speaks plaintext", err)
		}
	})
}

func TestExplainDialErrorPassesOthers(t *testing.T) {
	err := &net.OpError{Op: "dial", Err: errors.New("boom")}
	if got := ExplainDialError(err); got != error(err) {
		t.Errorf("ExplainDialError changed an unrelated error: %v", got)
	}
}

func tls13Listener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tls.NewListener(SniffListener(ln, true, nil), cfg)
}

// A reload is refused for a certificate that has expired (or is not valid
// yet): the old one stays in service. One that expires within
// ExpiryWarning is served, with a warning.
func TestCertReloadChecksDates(t *testing.T) {
	p := testpki.NewPKI(t)
	r, err := NewCertReloader(p.ServerCert, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	r.SetLogger(logs.logger())
	r.interval = 0
	p.CA.Issue(t, p.Dir, "server", testpki.Leaf{CN: "relay", Server: true, Expired: true})
	c, _ := r.GetCertificate(nil)
	if c.Leaf.SerialNumber.Cmp(p.Server.SerialNumber) != 0 {
		t.Fatal("an expired certificate replaced a valid one")
	}
	if r.Err() == nil || !strings.Contains(logs.String(), "keeping the old one") {
		t.Errorf("refusal not reported: Err %v, logs %s", r.Err(), logs.String())
	}
	_, _, soon := p.CA.Issue(t, p.Dir, "server", testpki.Leaf{CN: "relay", Server: true, NotAfter: time.Now().Add(ExpiryWarning / 2)})
	c, _ = r.GetCertificate(nil)
	if c.Leaf.SerialNumber.Cmp(soon.SerialNumber) != 0 {
		t.Fatal("a valid certificate that expires soon was not served")
	}
	if r.Err() != nil || !strings.Contains(logs.String(), "expires soon") {
		t.Errorf("no warning for a certificate expiring within %v: Err %v, logs %s", ExpiryWarning, r.Err(), logs.String())
	}
}
