//go:build linux

package hostile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/internal/testpki"
)

// operatorRSSBound is what a refused file may cost the binary at peak: a
// Go process of this size starts at about 12 MiB; before the caps, these
// files took from 0.4 to 18 GB.
const operatorRSSBound = 64 << 20

// gnuTime reports a command's peak RSS (-f %M, in KiB).
const gnuTime = "/usr/bin/time"

// maxRSS reads the peak RSS GNU time wrote to file, in bytes.
func maxRSS(t *testing.T, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// time writes "Command exited with non-zero status N" first when it did.
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("GNU time wrote %q", b)
	}
	kib, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		t.Fatalf("GNU time wrote %q: %v", b, err)
	}
	return kib << 10
}

// TestOperatorFiles: files an operator can be tricked into naming
// (testdata/config/hostile, /dev/zero, a huge file) get a clear error from
// config check and start relay at a small, bounded peak RSS (the
// process's own maximum resident set, from getrusage).
func TestOperatorFiles(t *testing.T) {
	if _, err := os.Stat(gnuTime); err != nil {
		t.Skipf("no GNU time (Debian package time) to read a child's own peak RSS: %v", err)
	}
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
				// Through GNU time, which forks: Go starts children with
				// vfork, and Linux then records this test process's own peak
				// in the child's at exec, while a forked child starts
				// counting from time's few pages.
				peak := filepath.Join(t.TempDir(), "maxrss")
				cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-f", "%M", "-o", peak, bin}, append(args, "--config", tc.config)...)...)
				cmd.Env = append(os.Environ(), "COSNIM_CONFIG=")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				if ctx.Err() != nil {
					t.Fatalf("still running after %v", waitTimeout)
				}
				rss := maxRSS(t, peak)
				first, _, _ := strings.Cut(stderr.String(), "\n")
				t.Logf("exit %v, peak RSS %.1f MiB (bound %d MiB): %.160s", err, float64(rss)/(1<<20), operatorRSSBound>>20, first)
				if err == nil || !strings.Contains(stderr.String(), tc.want) {
					t.Errorf("exit %v, stderr %q; want a failure saying %q", err, stderr.String(), tc.want)
				}
				if rss > operatorRSSBound {
					t.Errorf("peak RSS %d MiB, over %d MiB", rss>>20, operatorRSSBound>>20)
				}
			})
		}
	}
}
