package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/internal/testnats"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

// waitTimeout bounds every wait; generous, since nothing here asserts timing.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) { testutil.Main(m) }

// cosnimBin builds the real binary once for the package's tests.
func cosnimBin(t *testing.T) string { return testutil.Build(t, "../cmd/cosnim") }

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// defaultDrainGrace is drain_grace's default as docs/CONFIG.md states it.
func defaultDrainGrace(t *testing.T) time.Duration {
	t.Helper()
	for line := range strings.SplitSeq(readFile(t, "../docs/CONFIG.md"), "\n") {
		cols := strings.Split(line, "|")
		if len(cols) > 3 && strings.TrimSpace(cols[1]) == "`drain_grace`" {
			d, err := time.ParseDuration(strings.TrimSpace(cols[2]))
			if err != nil {
				t.Fatalf("docs/CONFIG.md drain_grace default: %v", err)
			}
			return d
		}
	}
	t.Fatal("docs/CONFIG.md has no drain_grace row")
	return 0
}

// startRelayCmd runs the binary with args as a deploy file gives them,
// --config pointing instead at a plaintext loopback configuration with the
// same relay name, waits until /readyz answers 200, sends SIGTERM and
// checks that the relay drains and exits 0 within stopTimeout.
func startRelayCmd(t *testing.T, args []string, stopTimeout time.Duration) {
	t.Helper()
	bin := cosnimBin(t)
	if len(args) < 3 || args[0] != "start" || args[1] != "relay" {
		t.Fatalf("command %q does not start a relay", args)
	}
	name := args[2]
	relayPort, opsPort := testutil.FreePort(t), testutil.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "cosnim.yaml")
	testutil.WriteFile(t, cfg, fmt.Sprintf(`relays:
  %s:
    client: {url: "tcp://127.0.0.1:%d"}
    server: {url: "tcp://127.0.0.1:%d", metrics_url: "http://127.0.0.1:%d"}
`, name, relayPort, relayPort, opsPort))
	args = append([]string(nil), args...)
	replaced := false
	for i := range args[:len(args)-1] {
		if args[i] == "--config" {
			args[i+1], replaced = cfg, true
		}
	}
	if !replaced {
		t.Fatalf("command %q has no --config", args)
	}
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", opsPort)
	deadline := time.Now().Add(waitTimeout)
	for {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("cosnim %s exited: %v\n%s", strings.Join(args, " "), err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("cosnim %s never ready\n%s", strings.Join(args, " "), stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(stopTimeout):
		t.Fatalf("still running %v after SIGTERM\n%s", stopTimeout, stderr.String())
	}
}

// configCheck runs `cosnim config check` on data written to
// dir/cosnim.yaml, after issuing a server certificate and key to the paths
// certFile and keyFile (relative to dir, or absolute inside it).
func configCheck(t *testing.T, data, dir, certFile, keyFile string) {
	t.Helper()
	bin := cosnimBin(t)
	ca := testpki.NewCA(t, t.TempDir(), "test CA")
	cert, key, _ := ca.Issue(t, t.TempDir(), "relay", testpki.Leaf{CN: "relay", Server: true})
	for from, to := range map[string]string{cert: certFile, key: keyFile} { // sorted: independent copies
		if !filepath.IsAbs(to) {
			to = filepath.Join(dir, to)
		}
		testutil.WriteFile(t, to, readFile(t, from))
	}
	cfg := filepath.Join(dir, "cosnim.yaml")
	testutil.WriteFile(t, cfg, data)
	if out, err := exec.Command(bin, "config", "check", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("cosnim config check: %v\n%s", err, out)
	}
}

// liveMetrics starts a relay in process with its operations listener on
// loopback, gives it work that touches every metric family (a member that
// announces to another, a connection that skips the handshake) and returns
// one scrape of /metrics.
func liveMetrics(t *testing.T) string {
	t.Helper()
	// With a backbone (a NATS server in process), so its metrics are
	// exported too.
	nats := testnats.Start(t, testnats.Options(t))
	s, err := relayserver.New(relayserver.Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Backbone: &natsbus.Options{URLs: []string{nats.URL()}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	select {
	case <-s.Listening():
	case err := <-ran:
		t.Fatalf("Run: %v", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
	defer wcancel()
	var agents []*agent.Agent
	for range 2 {
		a, err := agent.New(agent.Options{Addrs: []string{s.Addr().String()}, Secret: []byte("deploy test secret"),
			BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.Join("hub"); err != nil {
			t.Fatal(err)
		}
		if err := a.WaitCaughtUp(wctx, "hub"); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	if err := agents[0].AnnounceAndWait(wctx, "hub", []byte("capsule-1")); err != nil {
		t.Fatal(err)
	}
	// A Ping before Hello: a refused handshake and an error frame.
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(waitTimeout))
	nc.Write(wire.Append(nil, &wire.Ping{Data: 1}))
	io.Copy(io.Discard, nc) // until the relay closes it
	nc.Close()

	resp, err := http.Get("http://" + s.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// exportedNames lists the series names a scrape holds: every sample's
// name and, for histograms and summaries, the family's _bucket, _sum and
// _count.
func exportedNames(t *testing.T, scrape string) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, sfx := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+sfx] = true
				}
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		names[line[:strings.IndexAny(line, "{ ")]] = true
	}
	return names
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricName = regexp.MustCompile(`\b(?:cosnim|process|go)_[a-zA-Z0-9_]+\b`)
)

// queriedNames lists the cosnim, process and Go metric names a PromQL
// expression reads.
func queriedNames(expr string) []string {
	return metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

// parseBytes reads 512MiB, 1Gi, 900MiB or a plain byte count.
func parseBytes(t *testing.T, s string) int64 {
	t.Helper()
	units := []struct {
		sfx  string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.sfx); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("size %q: %v", s, err)
			}
			return v * u.mult
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	return v
}
