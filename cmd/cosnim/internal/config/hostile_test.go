package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/files"
)

// hostileDir holds the attack shapes, shared with cmd/cosnim's tests of
// the binary: merge_bomb.yaml (one alias merged 8 times over 10 levels),
// twin_merge_bomb.yaml (two anchors per level over 200 levels, so that
// merging each alias once is not enough: a level's expansion must be kept)
// and alias_fanout.yaml (1000 relays aliasing a list of 1000 items).
const hostileDir = "../../../../testdata/config/hostile/"

func hostile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(hostileDir + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeCounting decodes data as parse does and reports how many nodes
// the decoder expanded.
func decodeCounting(t *testing.T, data string) (nodes int, errs Errors) {
	t.Helper()
	d := &decoder{name: "bomb.yaml", lines: map[string]int{}}
	d.parse([]byte(data))
	return d.nodes, d.errs
}

// TestMergeBombs: merge keys cost what the file spells, not what a naive
// expansion would (8^9 ≈ 134 million pairs for the first, 2^200 for the
// second). Each mapping is expanded once and a merged key is kept once.
func TestMergeBombs(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		maxNodes   int
	}{
		{"one alias merged 8 times, 10 levels", hostile(t, "merge_bomb.yaml"), 400},
		{"two anchors per level, 200 levels", hostile(t, "twin_merge_bomb.yaml"), 8000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("%d bytes", len(tc.yaml))
			nodes, errs := decodeCounting(t, tc.yaml)
			if nodes > tc.maxNodes {
				t.Errorf("expanded %d nodes, want at most %d", nodes, tc.maxNodes)
			}
			for _, e := range errs {
				if errors.Is(e, ErrTooManyNodes) {
					t.Errorf("got %v, want the file decoded in full", e)
				}
			}
		})
	}
}

// TestAliasFanout: plain aliases that multiply stop at MaxNodes, with one
// error at the alias where the expansion crossed it.
func TestAliasFanout(t *testing.T) {
	data := hostile(t, "alias_fanout.yaml") // 10^6 nodes from 13 KB
	nodes, errs := decodeCounting(t, data)
	if nodes > MaxNodes+1000 {
		t.Errorf("expanded %d nodes, want the decoder stopped near MaxNodes (%d)", nodes, MaxNodes)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrTooManyNodes) {
		t.Fatalf("got %d errors (%v), want one ErrTooManyNodes", len(errs), errs)
	}
	// Each relay costs 1,000 list items and a few nodes around them, so
	// the alias that crosses MaxNodes is that of relay MaxNodes/1004 or so
	// (on line relay+3).
	line := errs[0].Line
	want := strings.Split(data, "\n")[line-1]
	if !strings.HasSuffix(want, ": *r") || line < MaxNodes/1010 || line > MaxNodes/1000+3 {
		t.Errorf("error at line %d (%q), want the alias of relay ~%d", line, want, MaxNodes/1004)
	}
	if !strings.Contains(errs[0].Error(), fmt.Sprintf("bomb.yaml:%d: ", line)) {
		t.Errorf("error %q does not name the file and line", errs[0])
	}
}

// TestMergeOrder: of several merged mappings the earlier wins (YAML's
// rule), and the mapping's own keys win over every merged one.
func TestMergeOrder(t *testing.T) {
	f, err := Parse([]byte(`relays:
  a: &a {client: {url: 'tcp://127.0.0.1:1', connect_timeout: 1s}, server: {url: 'tcp://127.0.0.1:1'}}
  b: &b {client: {url: 'tcp://127.0.0.1:2', connect_timeout: 2s}, server: {url: 'tcp://127.0.0.1:2'}}
  c:
    <<: [*a, *b]
  d:
    <<: [*b, *a]
    server: {url: 'tcp://127.0.0.1:4'}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ relay, client, server string }{
		{"c", "127.0.0.1:1", "127.0.0.1:1"},
		{"d", "127.0.0.1:2", "127.0.0.1:4"},
	} {
		r := f.Relays[tc.relay]
		if r.Client.Address != tc.client || r.Server.Address != tc.server {
			t.Errorf("relay %s: client %s, server %s; want %s, %s", tc.relay, r.Client.Address, r.Server.Address, tc.client, tc.server)
		}
	}
}

// TestSyntaxSearchBounded: the search for a syntax error's line parses
// at most maxBisectBytes, whatever the file's length.
func TestSyntaxSearchBounded(t *testing.T) {
	// The misindented key is 4,000 lines below the block yaml names.
	const head, tail = "relays:\n  local:\n    client:\n      url: tcp://h:1\n", "     server:\n      url: tcp://h:1\n"
	data := head + strings.Repeat("    # "+strings.Repeat("x", 60)+"\n", 4000) + tail
	var es Errors
	_, err := Parse([]byte(data), "x.yaml")
	if !errors.As(err, &es) || len(es) != 1 || !errors.Is(es[0], ErrSyntax) {
		t.Fatalf("got %v, want one syntax error", err)
	}
	if got := firstFailingLine([]byte(data), es[0].Err.Error(), 1); got != 0 {
		t.Errorf("searched up to line %d; want the search given up past %d bytes parsed", got, maxBisectBytes)
	}
	// The same mistake in a short file is found.
	if got := firstFailingLine([]byte(head+tail), es[0].Err.Error(), 1); got != 5 {
		t.Errorf("the short file's mistake found at line %d, want 5", got)
	}
}

// TestUnusableFiles: a device, a directory or an oversized file named as a
// certificate or as the configuration is refused before it is read.
func TestUnusableFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, files.MaxPEM+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/dev/zero", dir, big} {
		cfg := fmt.Sprintf("relays:\n  r:\n    client: {url: 'tcps://127.0.0.1:1'}\n    server:\n      url: 'tcps://127.0.0.1:1'\n      ssl_cert_file: %s\n      private_key_file: %s\n", name, name)
		_, err := Parse([]byte(cfg), filepath.Join(dir, "c.yaml"))
		var es Errors
		if !errors.As(err, &es) || len(es) != 2 {
			t.Fatalf("%s: got %v, want two errors", name, err)
		}
		for i, e := range es {
			if !errors.Is(e, ErrUnusableFile) || e.Line != 6+i {
				t.Errorf("%s: got %v (line %d), want ErrUnusableFile at line %d", name, e, e.Line, 6+i)
			}
		}
	}
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, append([]byte("relays: {}\n"), make([]byte, files.MaxConfig)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{huge, "/dev/zero"} {
		if _, err := Load(name); err == nil || !(errors.Is(err, files.ErrTooLarge) || errors.Is(err, files.ErrNotRegular)) || !strings.Contains(err.Error(), name) {
			t.Errorf("Load(%s) = %v, want a refusal naming it", name, err)
		}
	}
}

// TestCapsDocumented: docs/CONFIG.md states the caps the code applies.
func TestCapsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	flat := strings.Join(strings.Fields(string(doc)), " ")
	for _, want := range []string{
		fmt.Sprintf("of at most %d MiB (certificates, keys, CA bundles, NATS creds and seeds)", files.MaxPEM>>20),
		fmt.Sprintf("The configuration file itself may hold at most %d KiB", files.MaxConfig>>10),
		fmt.Sprintf("a `--continuum-key-file` at most %d KiB", files.MaxSecret>>10),
		fmt.Sprintf("aliases its way past %d nodes", MaxNodes),
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/CONFIG.md does not say %q", want)
		}
	}
}
