package config

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport/tcp"
)

// limitsFile writes a configuration whose relay r sets limits (YAML lines
// under server.limits, "" for none) and returns its path and the line of
// each key, "limits" included.
func limitsFile(t *testing.T, limits string) (path string, lines map[string]int) {
	t.Helper()
	y := "relays:\n  r:\n    client:\n      url: tcp://h\n    server:\n      url: tcp://:0\n"
	lines = map[string]int{}
	if limits != "" {
		y += "      limits:\n"
		lines["limits"] = strings.Count(y, "\n")
		for _, l := range strings.Split(limits, "\n") {
			y += "        " + l + "\n"
			k, _, _ := strings.Cut(l, ":")
			lines[k] = strings.Count(y, "\n")
		}
	}
	path = filepath.Join(t.TempDir(), "cosnim.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, lines
}

// configCheck is what `cosnim config check` runs.
func configCheck(path string) error {
	f, err := Load(path)
	if err != nil {
		return err
	}
	return Check(f)
}

// relayNew builds the relay core from the file's limits as `cosnim start
// relay` does (serverConfig passes Server.Limits to relayserver.New, which
// hands it to relay.New), decoding without Load's validation.
func relayNew(t *testing.T, path string) error {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &decoder{name: path, lines: map[string]int{}}
	f := d.parse(data)
	if f == nil {
		t.Fatalf("decoding %s: %v", path, d.errs)
	}
	_, err = relay.New(f.Relays["r"].Server.Limits, rand.New(rand.NewPCG(1, 2)))
	return err
}

// TestLimitRulesAgree writes one file per limit rule (and its edge) and
// wants `config check` and relay construction to accept and refuse the
// same files, naming the same limit, at its line.
func TestLimitRulesAgree(t *testing.T) {
	tests := []struct {
		rule    string // "KEY min" or "KEY bound"; "" for an accepted edge
		limits  string
		refused string // key refused; "" for accepted
	}{
		{"", "", ""},
		{"max_connections min", "max_connections: -1", "max_connections"},
		{"handshake_timeout min", "handshake_timeout: -1s", "handshake_timeout"},
		{"heartbeat_interval min", "heartbeat_interval: -1ms", "heartbeat_interval"},
		{"idle_timeout min", "idle_timeout: -1s", "idle_timeout"},
		{"max_frame_size min", "max_frame_size: 1023\nmax_entry_size: 900", "max_frame_size"},
		{"", "max_frame_size: 1KiB\nmax_entry_size: 960", ""},
		{"max_channels_per_connection min", "max_channels_per_connection: -1", "max_channels_per_connection"},
		{"cache_entries min", "cache_entries: -1", "cache_entries"},
		{"channel_idle_timeout min", "channel_idle_timeout: -1m", "channel_idle_timeout"},
		{"pending_entries min", "pending_entries: -1", "pending_entries"},
		{"frame_rate min", "frame_rate: -1", "frame_rate"},
		{"accept_rate min", "accept_rate: -1", "accept_rate"},
		// the relay wants 64 bytes of a frame for the header around an entry
		{"max_entry_size bound", "max_entry_size: 65473", "max_entry_size"},
		{"max_entry_size bound", "max_frame_size: 1KiB", "max_entry_size"},
		{"", "max_entry_size: 65472", ""},
		{"idle_timeout bound", "idle_timeout: 15s", "idle_timeout"},
		{"idle_timeout bound", "heartbeat_interval: 45s", "idle_timeout"},
		{"", "heartbeat_interval: 44s", ""},
		{"byte_rate bound", "byte_rate: 65535", "byte_rate"},
		{"byte_rate bound", "max_frame_size: 16MiB\nsend_queue: 32MiB", "byte_rate"},
		{"", "byte_rate: 64KiB", ""},
		{"max_handshakes min", "max_handshakes: -1", "max_handshakes"},
		{"sync_reply_entries min", "sync_reply_entries: -1", "sync_reply_entries"},
		{"join_rate min", "join_rate: -1", "join_rate"},
		{"max_denied_joins min", "max_denied_joins: -1", "max_denied_joins"},
		{"client_hello_timeout min", "client_hello_timeout: -1s", "client_hello_timeout"},
		{"max_pre_handshake min", "max_pre_handshake: -1", "max_pre_handshake"},
		{"max_connections_per_source min", "max_connections_per_source: -1", "max_connections_per_source"},
		{"max_handshakes_per_source min", "max_handshakes_per_source: -1", "max_handshakes_per_source"},
		{"accept_rate_per_source min", "accept_rate_per_source: -1", "accept_rate_per_source"},
		// past high water (256 KiB) a member needs room for one more frame
		{"send_queue bound", "send_queue: 319KiB", "send_queue"},
		{"send_queue bound", "max_frame_size: 4MiB\nbyte_rate: 8MiB", "send_queue"},
		{"", "send_queue: 320KiB", ""},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.rule] = true
		t.Run(strings.ReplaceAll(tt.limits, "\n", ";"), func(t *testing.T) {
			path, lines := limitsFile(t, tt.limits)
			checkErr, newErr := configCheck(path), relayNew(t, path)
			if (checkErr == nil) != (newErr == nil) {
				t.Fatalf("config check says %v; relay.New says %v", checkErr, newErr)
			}
			if tt.refused == "" {
				if checkErr != nil {
					t.Fatalf("config check and relay.New refused a file that works: %v", checkErr)
				}
				return
			}
			if checkErr == nil {
				t.Fatalf("config check and relay.New accepted %q, want %s refused", tt.limits, tt.refused)
			}
			var le *relay.LimitError
			if !errors.As(newErr, &le) || le.Key != tt.refused {
				t.Errorf("relay.New: %v, want a *relay.LimitError for %s", newErr, tt.refused)
			}
			line, ok := lines[tt.refused]
			if !ok {
				line = lines["limits"]
			}
			var es Errors
			errors.As(checkErr, &es)
			want := fmt.Sprintf("%s:%d: relays.r.server.limits.%s: ", path, line, tt.refused)
			if len(es) != 1 || !errors.Is(es[0], ErrInvalid) || !strings.HasPrefix(es[0].Error(), want) {
				t.Errorf("config check: %v, want one ErrInvalid starting %q", checkErr, want)
			}
		})
	}
	// Every rule a file can break has a case: minimums of byte sizes of
	// at least 1 cannot be written (no negative sizes; 0 is
	// TestLimitZeroRefused's).
	for _, l := range relay.Limits() {
		if (l.Unit != relay.Bytes || l.Min > 1) && !covered[l.Key+" min"] {
			t.Errorf("no case breaks the minimum of %s", l.Key)
		}
		if l.Bound != nil && !covered[l.Key+" bound"] {
			t.Errorf("no case breaks the bound of %s", l.Key)
		}
	}
}

// TestLimitZeroRefused: 0 in relay.Config means "the default", so a file
// that says 0 is refused rather than quietly given the default.
func TestLimitZeroRefused(t *testing.T) {
	for _, l := range relay.Limits() {
		t.Run(l.Key, func(t *testing.T) {
			path, lines := limitsFile(t, l.Key+": 0")
			err := configCheck(path)
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 || !errors.Is(es[0], ErrInvalid) ||
				es[0].Path != "relays.r.server.limits."+l.Key || es[0].Line != lines[l.Key] {
				t.Errorf("config check: %v, want one ErrInvalid at line %d, %s", err, lines[l.Key], l.Key)
			}
			if err := relayNew(t, path); err != nil {
				t.Errorf("relay.New refused a zero (the default): %v", err)
			}
		})
	}
}

// TestLimitsDecodedByTable: every key of relay.Limits is read from the
// file in its unit, and Server.Limits is what relay.New is given.
func TestLimitsDecodedByTable(t *testing.T) {
	var lines []string
	want := relay.DefaultConfig()
	for i, l := range relay.Limits() {
		// each value differs from its default and keeps every rule
		step := int64(1)
		switch l.Unit {
		case relay.Duration:
			step = 1e6 // a millisecond
		case relay.Bytes:
			step = 1 << 10
		}
		v := l.Default + int64(i+1)*step
		l.Set(&want, v)
		// dashes for underscores, and each unit as it is written
		lines = append(lines, strings.ReplaceAll(l.Key, "_", "-")+": "+l.Unit.Format(v))
	}
	path, _ := limitsFile(t, strings.Join(lines, "\n"))
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Relays["r"].Server.Limits
	for _, l := range relay.Limits() {
		if l.Get(got) != l.Get(want) {
			t.Errorf("%s: got %s, want %s", l.Key, l.Unit.Format(l.Get(got)), l.Unit.Format(l.Get(want)))
		}
	}
	if got.HighWater != relay.DefaultHighWater {
		t.Errorf("HighWater = %d, want the default %d", got.HighWater, relay.DefaultHighWater)
	}
}

// TestURLRulesAreTheDrivers: a relay url passes Load exactly when the
// driver's parser takes it (tcp.ParseURL for client, tcp.ParseListenURL
// for server), with the same address, and a refusal names file, line and
// key.
func TestURLRulesAreTheDrivers(t *testing.T) {
	urls := []string{
		"tcp://h", "tcps://h:7421", "TCP://h/", "tcp://[::1]", "tcp://:7420", "tcp://", "tcp://:0",
		"tcp://h:0", "tcp://h:", "tcp://h:65536", "tcp://h/x", "tcp://h?q", "tcp://h#f", "tcp://u@h", "h:7420", "http://h",
	}
	for _, u := range urls {
		for _, side := range []string{"client", "server"} {
			if side == "server" && strings.HasPrefix(u, "tcps") {
				continue // needs a certificate; TestFullFile listens on tcps://:7421
			}
			t.Run(side+" "+u, func(t *testing.T) {
				parse, other := tcp.ParseURL, "server: {url: tcp://h}"
				if side == "server" {
					parse, other = tcp.ParseListenURL, "client: {url: tcp://h}"
				}
				y := fmt.Sprintf("relays:\n  r:\n    %s\n    %s:\n      url: %q\n", other, side, u)
				f, err := Parse([]byte(y), "c.yaml")
				_, hostport, perr := parse(u)
				if (err == nil) != (perr == nil) {
					t.Fatalf("config says %v; the driver says %v", err, perr)
				}
				if err != nil {
					if want := "c.yaml:5: relays.r." + side + ".url: "; !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrInvalid) {
						t.Errorf("got %v, want ErrInvalid starting %q", err, want)
					}
					return
				}
				got := f.Relays["r"].Client.Address
				if side == "server" {
					got = f.Relays["r"].Server.Address
				}
				if got != hostport {
					t.Errorf("Address = %q, driver says %q", got, hostport)
				}
			})
		}
	}
}
