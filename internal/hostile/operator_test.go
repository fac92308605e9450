//go:build linux

package hostile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/internal/testpki"
)

// operatorRSSBound is what a refused file may cost the binary at peak: a
// Go process of this size starts at about 12 MiB; before the caps, these
// files took from 0.4 to 18 GB.
const operatorRSSBound = 64 << 20

// TestOperatorFiles: files an operator can be tricked into naming
// (testdata/config/hostile, /dev/zero, a huge file) get a clear error from
// config check and start relay at a small, bounded peak RSS (the
// process's own maximum resident set, from getrusage).
func TestOperatorFiles(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	p := testpki.NewPKI(t)
	tls := func(name, cert string) string {
		f := filepath.Join(dir, name)
		y := fmt.Sprintf("relays:\n  r:\n    client:\n      url: tcps://127.0.0.1:1\n      ca_cert_file: %s\n    server:\n      url: tcps://127.0.0.1:1\n      ssl_cert_file: %s\n      private_key_file: %s\n", p.CA.File, cert, p.ServerKey)
		if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	huge := filepath.Join(dir, "huge.yaml") // 139 MiB, sparse
	if err := os.WriteFile(huge, []byte("relays: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 139<<20); err != nil {
		t.Fatal(err)
	}
	const hostileDir = "../../testdata/config/hostile/"
	for _, tc := range []struct {
		name, config, relay, want string
	}{
		{"merge bomb", hostileDir + "merge_bomb.yaml", "l0", "url is required"},
		{"twin merge bomb", hostileDir + "twin_merge_bomb.yaml", "a0", "url is required"},
		{"alias fanout", hostileDir + "alias_fanout.yaml", "r0", "YAML nodes through aliases"},
		{"/dev/zero as the certificate", tls("zero.yaml", "/dev/zero"), "r", "not a regular file"},
		{"/dev/zero as the configuration", "/dev/zero", "r", "not a regular file"},
		{"a 139 MiB configuration", huge, "r", files.ErrTooLarge.Error()},
	} {
		for _, args := range [][]string{{"config", "check"}, {"start", "relay", tc.relay}} {
			t.Run(tc.name+"/"+strings.Join(args, " "), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, append(args, "--config", tc.config)...)
				cmd.Env = append(os.Environ(), "COSNIM_CONFIG=")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				if ctx.Err() != nil {
					t.Fatalf("still running after %v", waitTimeout)
				}
				rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
				first, _, _ := strings.Cut(stderr.String(), "\n")
				t.Logf("exit %v, peak RSS %.1f MiB (bound %d MiB): %.160s", err, float64(rss)/(1<<20), operatorRSSBound>>20, first)
				if err == nil || !strings.Contains(stderr.String(), tc.want) {
					t.Errorf("exit %v, stderr %q; want a failure saying %q", err, stderr.String(), tc.want)
				}
				// Linux records the forking process's peak in the child's at
				// exec; the figure is the child's only while ours is lower.
				var self syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &self)
				switch {
				case self.Maxrss<<10 >= operatorRSSBound:
					t.Logf("peak RSS not measurable here: this test process peaked at %d MiB", self.Maxrss>>10)
				case rss > operatorRSSBound:
					t.Errorf("peak RSS %d MiB, over %d MiB", rss>>20, operatorRSSBound>>20)
				}
			})
		}
	}
}
