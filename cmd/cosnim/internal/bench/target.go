package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
)

// ErrNoRestart is returned by Restart for a relay the bench does not run.
var ErrNoRestart = errors.New("bench: cannot restart a relay the bench does not run (use --in-process or --spawn)")

// Target is the relay a run measures.
type Target interface {
	// Addr is the relay's HOST:PORT.
	Addr() string
	// ClientTLS is the clients' TLS configuration, nil for plaintext. It
	// holds one session cache shared by all clients, for resumption.
	ClientTLS() *tls.Config
	// Restart stops the relay at once (memory lost, connections cut) and
	// starts a new one on the same address.
	Restart(ctx context.Context) error
	// Usage measures the relay's resources; ok is false when it cannot.
	Usage() (u Usage, ok bool)
	// Kind names the target for the report: in-process, spawned, external.
	Kind() string
	// Close stops what the bench started.
	Close() error
}

// RelayConfig is the relay configuration the bench runs in-process or
// spawned: the defaults, except the per-connection frame and byte rates
// (a bench publisher is far beyond what one instance sends), the connection
// limit, and the accept rate when acceptRate > 0.
func RelayConfig(acceptRate int) relay.Config {
	c := relay.Config{
		FrameRate:      1 << 20,
		ByteRate:       1 << 30,
		MaxConnections: 1 << 20,
		AcceptRate:     acceptRate,
	}
	return c.WithDefaults()
}

// inProcess runs a relayserver.Server inside the bench.
type inProcess struct {
	cfg    relayserver.Config
	client *tls.Config
	mu     sync.Mutex // guards the following
	srv    *relayserver.Server
	done   chan error
	addr   string
}

// StartInProcess starts a relay on 127.0.0.1:0 in this process, with a
// generated certificate when useTLS is set.
func StartInProcess(useTLS bool, acceptRate int) (Target, error) {
	t := &inProcess{cfg: relayserver.Config{Relay: RelayConfig(acceptRate), Addr: "127.0.0.1:0"}}
	if useTLS {
		srv, cli, err := selfSignedTLS()
		if err != nil {
			return nil, err
		}
		t.cfg.TLS, t.client = srv, cli
	}
	if err := t.start(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *inProcess) start() error {
	srv, err := relayserver.New(t.cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		return err
	}
	t.mu.Lock()
	t.srv, t.done, t.addr = srv, done, srv.Addr().String()
	t.cfg.Addr = t.addr // a restart listens on the same port
	t.mu.Unlock()
	return nil
}

func (t *inProcess) stop() {
	t.mu.Lock()
	srv, done := t.srv, t.done
	t.srv = nil
	t.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-done
	}
}

func (t *inProcess) Addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

func (t *inProcess) ClientTLS() *tls.Config { return t.client }
func (t *inProcess) Kind() string           { return "in-process" }
func (t *inProcess) Usage() (Usage, bool)   { return selfUsage(), true }
func (t *inProcess) Close() error           { t.stop(); return nil }

func (t *inProcess) Restart(ctx context.Context) error {
	t.stop()
	var err error
	for ctx.Err() == nil {
		if err = t.start(); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond) // the port may linger briefly
	}
	return fmt.Errorf("bench: restart: %w", err)
}

// selfSignedTLS makes a server configuration with a fresh ECDSA
// certificate for 127.0.0.1 and a client configuration that trusts it.
func selfSignedTLS() (server, client *tls.Config, err error) {
	certPEM, keyPEM, err := selfSignedPEM()
	if err != nil {
		return nil, nil, err
	}
	return tlsFromPEM(certPEM, keyPEM)
}

func selfSignedPEM() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cosnim bench relay"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func tlsFromPEM(certPEM, keyPEM []byte) (server, client *tls.Config, err error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, CurvePreferences: tcp.ClassicalKeyExchanges}
	client = clientTLS(certPEM)
	return server, client, nil
}

func clientTLS(caPEM []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		ServerName:         "127.0.0.1",
		ClientSessionCache: tls.NewLRUClientSessionCache(1 << 16),
		// What the bench relay offers: a hybrid key share (1.2 KB) would be
		// sent for nothing, and crypto/tls keeps the ClientHello-sized
		// buffers it filled for the life of the connection (~3 KB each).
		CurvePreferences: tcp.ClassicalKeyExchanges,
	}
}

// external is a relay the bench does not run.
type external struct {
	addr string
	tls  *tls.Config
	pid  int
}

// External returns a target for a running relay at addr; pid, when not 0,
// is the relay's process, whose CPU and RSS are read from /proc.
func External(addr string, cfg *tls.Config, pid int) Target {
	return &external{addr: addr, tls: cfg, pid: pid}
}

func (t *external) Addr() string                  { return t.addr }
func (t *external) ClientTLS() *tls.Config        { return t.tls }
func (t *external) Kind() string                  { return "external" }
func (t *external) Restart(context.Context) error { return ErrNoRestart }
func (t *external) Close() error                  { return nil }
func (t *external) Usage() (Usage, bool) {
	if t.pid == 0 {
		return Usage{}, false
	}
	u, err := procUsage(t.pid)
	return u, err == nil
}

// serveHello is the first line a spawned relay prints.
type serveHello struct {
	Addr  string `json:"addr"`
	Pid   int    `json:"pid"`
	CAPEM string `json:"ca_pem,omitempty"`
}

// Serve runs the relay of a spawned target: it starts a relay as
// StartInProcess does, prints a JSON line with its address, then answers
// commands read line by line from in: "usage" (a JSON Usage line),
// "restart", "cpuprofile PATH" and "stopprofile" (a line "ok" or an
// error); it stops at EOF.
func Serve(in io.Reader, out io.Writer, useTLS bool, acceptRate int) error {
	t := &inProcess{cfg: relayserver.Config{Relay: RelayConfig(acceptRate), Addr: "127.0.0.1:0"}}
	hello := serveHello{Pid: os.Getpid()}
	if useTLS {
		certPEM, keyPEM, err := selfSignedPEM()
		if err != nil {
			return err
		}
		t.cfg.TLS, _, err = tlsFromPEM(certPEM, keyPEM)
		if err != nil {
			return err
		}
		hello.CAPEM = string(certPEM)
	}
	if err := t.start(); err != nil {
		return err
	}
	defer t.stop()
	hello.Addr = t.addr
	enc := json.NewEncoder(out)
	if err := enc.Encode(hello); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "usage":
			if err := enc.Encode(selfUsage()); err != nil {
				return err
			}
		case "stopprofile":
			pprof.StopCPUProfile()
			fmt.Fprintln(out, "ok")
		case "restart":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := t.Restart(ctx)
			cancel()
			msg := "ok"
			if err != nil {
				msg = err.Error()
			}
			if _, err := fmt.Fprintln(out, msg); err != nil {
				return err
			}
		default:
			if path, ok := strings.CutPrefix(sc.Text(), "cpuprofile "); ok {
				fmt.Fprintln(out, startProfile(path))
				continue
			}
			fmt.Fprintln(out, "unknown command")
		}
	}
	return sc.Err()
}

// spawned is a relay in a child process running Serve.
type spawned struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	mu     sync.Mutex // one command at a time
	hello  serveHello
	tls    *tls.Config
}

// Spawn starts exe with args (which must make it call Serve) and returns
// the relay it runs.
func Spawn(exe string, args []string, useTLS bool) (Target, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &spawned{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	line, err := t.stdout.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &t.hello)
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("bench: spawned relay did not start: %w", err)
	}
	if useTLS {
		if t.hello.CAPEM == "" {
			t.Close()
			return nil, errors.New("bench: spawned relay has no TLS certificate")
		}
		t.tls = clientTLS([]byte(t.hello.CAPEM))
	}
	return t, nil
}

func (t *spawned) Addr() string           { return t.hello.Addr }
func (t *spawned) ClientTLS() *tls.Config { return t.tls }
func (t *spawned) Kind() string           { return "spawned" }

func (t *spawned) command(c string) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := fmt.Fprintln(t.stdin, c); err != nil {
		return nil, err
	}
	return t.stdout.ReadBytes('\n')
}

func (t *spawned) Usage() (Usage, bool) {
	var u Usage
	line, err := t.command("usage")
	if err == nil {
		err = json.Unmarshal(line, &u)
	}
	return u, err == nil
}

func (t *spawned) Restart(ctx context.Context) error {
	line, err := t.command("restart")
	if err != nil {
		return err
	}
	if s := string(line); s != "ok\n" {
		return fmt.Errorf("bench: spawned relay: %s", s)
	}
	return nil
}

func (t *spawned) Close() error {
	t.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- t.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.cmd.Process.Kill()
		return <-done
	}
}

// startProfile starts a CPU profile of this process into path.
func startProfile(path string) string {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// Profile starts a CPU profile of the spawned relay into path (its own
// process), until the returned stop is called.
func Profile(t Target, path string) (stop func() error, err error) {
	s, ok := t.(*spawned)
	if !ok {
		return nil, errors.New("bench: --relay-cpuprofile needs --spawn")
	}
	if err := s.okCommand("cpuprofile " + path); err != nil {
		return nil, err
	}
	return func() error { return s.okCommand("stopprofile") }, nil
}

func (t *spawned) okCommand(c string) error {
	line, err := t.command(c)
	if err != nil {
		return err
	}
	if s := string(line); s != "ok\n" {
		return fmt.Errorf("bench: spawned relay: %s", s)
	}
	return nil
}
