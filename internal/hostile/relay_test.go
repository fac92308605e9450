package hostile

import (
	"bufio"
	"context"
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
}

// startRelay runs `cosnim start relay r` with limits (YAML lines under
// server.limits) and waits until it is ready.
func startRelay(t *testing.T, limits ...string) *target {
	t.Helper()
	bin := binary(t)
	tg := &target{addr: testutil.FreeAddr(t), ops: testutil.FreeAddr(t)}
	y := fmt.Sprintf("relays:\n  r:\n    client:\n      url: tcp://%s\n    server:\n      url: tcp://%s\n      metrics_url: http://%s\n",
		tg.addr, tg.addr, tg.ops)
	if len(limits) > 0 {
		y += "      limits:\n"
		for _, l := range limits {
			y += "        " + l + "\n"
		}
	}
	cfg := filepath.Join(t.TempDir(), "cosnim.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	tg.cmd = exec.Command(bin, "start", "relay", "r", "--config", cfg, "--log-level", "warn")
	if err := tg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tg.cmd.Process.Kill()
		tg.cmd.Wait()
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		resp, err := http.Get("http://" + tg.ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return tg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready after %v", waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
