package hostile

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

var (
	duration = flag.Duration("hostile.duration", 2*time.Second, "how long each attack runs (make hostile: 20s)")
	// Latency targets are checked only on request: a shared machine's
	// timings are figures to report, not to fail a test on.
	targets = flag.Bool("hostile.targets", false, "fail when a latency target is missed (make hostile)")
)

// waitTimeout bounds every wait; generous, since a loaded machine is slow.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) { testutil.Main(m) }

// binary builds cmd/cosnim once for the package.
func binary(t *testing.T) string { return testutil.Build(t, "../../cmd/cosnim") }

// target is one relay process under attack.
type target struct {
	addr, ops string
	cmd       *exec.Cmd
	client    *tls.Config // trusts the relay's certificate, with relayOptions.tls
}

// relayOptions says how startRelay configures its relay.
type relayOptions struct {
	limits   []string // YAML lines under server.limits
	backbone []string // YAML lines under server.backbone; ready then waits for it to connect
	tls      bool     // a tcps:// port with a certificate from testpki
	logLevel string   // --log-level; "warn" when empty
}

// startRelay runs `cosnim start relay r` as o says and waits until it is
// ready.
func startRelay(t *testing.T, o relayOptions) *target {
	t.Helper()
	bin := binary(t)
	tg := &target{addr: testutil.FreeAddr(t), ops: testutil.FreeAddr(t)}
	var y string
	if o.tls {
		p := testpki.NewPKI(t)
		y = fmt.Sprintf("relays:\n  r:\n    client:\n      url: tcps://%s\n      ca_cert_file: %s\n"+
			"    server:\n      url: tcps://%s\n      ssl_cert_file: %s\n      private_key_file: %s\n      metrics_url: http://%s\n",
			tg.addr, p.CA.File, tg.addr, p.ServerCert, p.ServerKey, tg.ops)
		roots := x509.NewCertPool()
		roots.AddCert(p.CA.Cert)
		tg.client = &tls.Config{RootCAs: roots, ServerName: "localhost"}
	} else {
		y = fmt.Sprintf("relays:\n  r:\n    client:\n      url: tcp://%s\n    server:\n      url: tcp://%s\n      metrics_url: http://%s\n",
			tg.addr, tg.addr, tg.ops)
	}
	for _, sec := range []struct {
		name  string
		lines []string
	}{{"backbone", o.backbone}, {"limits", o.limits}} {
		if len(sec.lines) > 0 {
			y += "      " + sec.name + ":\n"
			for _, l := range sec.lines {
				y += "        " + l + "\n"
			}
		}
	}
	cfg := filepath.Join(t.TempDir(), "cosnim.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	level := cmp.Or(o.logLevel, "warn")
	tg.cmd = exec.Command(bin, "start", "relay", "r", "--config", cfg, "--log-level", level)
	if err := tg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tg.cmd.Process.Kill()
		tg.cmd.Wait()
	})
	what := "relay ready"
	if len(o.backbone) > 0 {
		what += " with its backbone connected"
	}
	testutil.WaitFor(t, waitTimeout, what, func() bool {
		resp, err := http.Get("http://" + tg.ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		if len(o.backbone) == 0 {
			return true
		}
		st := tg.status(t)
		return st.Backbone != nil && st.Backbone.Connected
	})
	return tg
}

// peakRSS is the relay process's peak resident set (VmHWM), in bytes.
func (tg *target) peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", tg.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// status reads the relay's /status.
func (tg *target) status(t *testing.T) (st relayserver.Status) {
	t.Helper()
	testutil.GetJSON(t, "http://"+tg.ops+"/status", &st)
	return st
}

// dial opens a wire peer and completes the handshake.
func (tg *target) dial(t *testing.T, agent string) (*wirepeer.Peer, *wire.Welcome, net.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", tg.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := wirepeer.New(nc, 0)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	lift := p.Bound(ctx)
	defer lift()
	w, err := p.Handshake(agent)
	if err != nil {
		t.Fatalf("%s: handshake: %v", agent, err)
	}
	return p, w, nc
}
