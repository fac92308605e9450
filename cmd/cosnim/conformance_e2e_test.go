package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cosnim/relays/cmd/cosnim/internal/conformance"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
)

// conformanceLimits make every check of the kit runnable: short timers, a
// cache the kit can fill, and a drain with an alternate.
const conformanceLimits = `      drain_grace: 1s
      drain_alternates: [alt]
      limits:
        handshake_timeout: 2s
        heartbeat_interval: 1s
        idle_timeout: 3s
        channel_idle_timeout: 1s
        cache_entries: 24000
  alt:
    client:
      url: tcp://127.0.0.1:7499
    server:
      url: tcp://127.0.0.1:7499
`

// `cosnim relay conformance` passes every requirement against the real
// relay binary, plaintext and TLS, the drain included (the test stops the
// relay when the kit asks).
func TestConformanceAgainstRelay(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "tcps"}[useTLS]
		t.Run(name, func(t *testing.T) {
			port := testutil.FreePort(t)
			url := name + "://127.0.0.1:" + strconv.Itoa(port)
			server, flags := "", []string(nil)
			if useTLS {
				pki := testpki.NewPKI(t)
				server = "      ssl_cert_file: " + pki.ServerCert + "\n      private_key_file: " + pki.ServerKey + "\n"
				flags = []string{"--ca-cert-file", pki.CA.File}
			}
			yaml := "relays:\n  r:\n    client:\n      url: " + url + "\n    server:\n      url: " + url + "\n" + server + conformanceLimits
			cfg := kitWrite(t, t.TempDir(), "cosnim.yaml", yaml)
			relay := startKitRelay(t, "r", "--config", cfg)
			relay.waitLog(t, `msg="relay listening"`)

			ctx, cancel := context.WithTimeout(context.Background(), 2*kitTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, kitBinary(t), append([]string{"relay", "conformance", url, "--json", "--drain-wait", "20s"}, flags...)...)
			cmd.Env = kitEnv()
			stdout, stderr := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			signalled := false
		wait:
			for {
				select {
				case err = <-done:
					break wait
				case <-time.After(20 * time.Millisecond):
					if !signalled && strings.Contains(stderr.String(), "stop the relay now") {
						signalled = true
						relay.cmd.Process.Signal(syscall.SIGTERM)
					}
				}
			}
			var rep conformance.Report
			if jerr := json.Unmarshal([]byte(stdout.String()), &rep); jerr != nil {
				t.Fatalf("output is not a report (%v, exit %v):\n%s\nstderr:\n%s", jerr, err, stdout.String(), stderr.String())
			}
			for _, r := range rep.Results {
				if r.Status != conformance.Pass {
					t.Errorf("%s", r)
				}
			}
			if err != nil || !rep.OK() || len(rep.Results) < 30 {
				t.Fatalf("exit %v, %d results, %d failed; stderr:\n%s", err, len(rep.Results), rep.Failed, stderr.String())
			}
		})
	}
}
