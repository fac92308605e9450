package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const dir = "../../../../testdata/config"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		sentinel error
		line     int
		path     string
		contains []string // user-facing parts of the message
	}{
		{"unknown key suggests the closest", "unknown_key.yaml", ErrUnknownKey, 7,
			"relays.main.server.ssl_cert_fle", []string{"unknown_key.yaml:7: ", "did you mean `ssl_cert_file`?"}},
		{"wrong type names the expected type", "wrong_type.yaml", ErrWrongType, 8,
			"relays.main.server.limits.max_connections", []string{"expected an integer", `"lots"`}},
		{"bad duration names the expected type", "bad_duration.yaml", ErrWrongType, 5,
			"relays.main.client.connect_timeout", []string{"expected a duration"}},
		{"missing file", "missing_file.yaml", ErrFileNotFound, 8,
			"relays.main.server.private_key_file", []string{"file not found: ", filepath.Join("certs", "missing.key")}},
		{"undefined relay in continuum", "undefined_relay.yaml", ErrUndefinedRelay, 13,
			"continuum.relay", []string{`"mian"`, "defined: backup, main"}},
		{"undefined relay in hub", "undefined_relay.yaml", ErrUndefinedRelay, 18,
			"capsule_hubs.gcs.relay", []string{`"other"`, "defined: backup, main"}},
		{"tcps without cert", "tcps_without_cert.yaml", ErrRequired, 5,
			"relays.main.server", []string{"ssl_cert_file is required"}},
		{"tcps without key", "tcps_without_cert.yaml", ErrRequired, 5,
			"relays.main.server", []string{"private_key_file is required"}},
		{"authorized_clients without client_ca_file", "authorized_without_ca.yaml", ErrRequired, 9,
			"relays.main.server.authorized_clients", []string{"requires client_ca_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Load(filepath.Join(dir, tt.file))
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want error", tt.file, f)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v is %T, want Errors", err, err)
			}
			var got *Error
			for _, e := range es {
				if errors.Is(e, tt.sentinel) && e.Path == tt.path && containsAll(e.Error(), tt.contains) {
					got = e
				}
			}
			if got == nil {
				t.Fatalf("no error wrapping %v at %s with %q in:\n%v", tt.sentinel, tt.path, tt.contains, err)
			}
			if got.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", got.Line, tt.line, got)
			}
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "cosnim.yaml", Line: 12, Path: "relays.main.server.ssl_cert_file",
		Err: newProblem(ErrFileNotFound, "file not found: /x/y.pem")}
	want := "cosnim.yaml:12: relays.main.server.ssl_cert_file: file not found: /x/y.pem"
	if got := e.Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(e, ErrFileNotFound) {
		t.Errorf("errors.Is(%v, ErrFileNotFound) = false", e)
	}
}

func TestInlineErrors(t *testing.T) {
	base := "relays:\n  r:\n    client:\n      url: tcp://h\n    server:\n      url: tcp://h\n"
	tests := []struct {
		name     string
		yaml     string
		sentinel error
		path     string
	}{
		{"duplicate after normalising", base + "      drain_grace: 1s\n      drain-grace: 2s\n", ErrDuplicateKey, "relays.r.server.drain_grace"},
		{"mapping where a string is due", base + "      metrics_url: {a: b}\n", ErrWrongType, "relays.r.server.metrics_url"},
		{"list expected", base + "      authorized_clients: CN=x\n", ErrWrongType, "relays.r.server.authorized_clients"},
		{"bad scheme", strings.Replace(base, "url: tcp://h\n    server", "url: http://h\n    server", 1), ErrInvalid, "relays.r.client.url"},
		{"client url without host", strings.Replace(base, "url: tcp://h\n    server", "url: tcp://:1\n    server", 1), ErrInvalid, "relays.r.client.url"},
		{"missing client url", "relays:\n  r:\n    server:\n      url: tcp://h\n", ErrRequired, "relays.r.client.url"},
		{"cert on tcp server", base + "      ssl_cert_file: x\n", ErrInvalid, "relays.r.server.ssl_cert_file"},
		{"post-quantum TLS on tcp server", base + "      tls_post_quantum: true\n", ErrInvalid, "relays.r.server.tls_post_quantum"},
		{"zero limit", base + "      limits:\n        max_connections: 0\n", ErrInvalid, "relays.r.server.limits.max_connections"},
		{"idle not above heartbeat", base + "      limits:\n        idle_timeout: 15s\n", ErrInvalid, "relays.r.server.limits.idle_timeout"},
		{"bad fingerprint", base + "      authorized_clients: [sha256:abc]\n", ErrInvalid, "relays.r.server.authorized_clients.0"},
		{"bad byte size", base + "      limits:\n        max_frame_size: big\n", ErrWrongType, "relays.r.server.limits.max_frame_size"},
		{"bad metrics url", base + "      metrics_url: 127.0.0.1:9420\n", ErrInvalid, "relays.r.server.metrics_url"},
		{"backoff max below min", strings.Replace(base, "url: tcp://h\n    server", "url: tcp://h\n      backoff_max: 10ms\n    server", 1), ErrInvalid, "relays.r.client.backoff_max"},
		{"unknown top-level section", base + "relay:\n  x: 1\n", ErrUnknownKey, "relay"},
		{"syntax", "relays: [\n", ErrSyntax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			found := false
			for _, e := range err.(Errors) {
				if errors.Is(e, tt.sentinel) && e.Path == tt.path {
					found = true
				}
			}
			if !found {
				t.Errorf("want %v at %q, got:\n%v", tt.sentinel, tt.path, err)
			}
		})
	}
}

func TestUnderscoreDashEquivalent(t *testing.T) {
	f, err := Load(filepath.Join(dir, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Relay("main")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "certs", "ca.pem"); r.Client.CACertFile != want {
		t.Errorf("ca-cert_file: got %q, want %q", r.Client.CACertFile, want)
	}
	if want := filepath.Join(dir, "certs", "server.key"); r.Server.PrivateKeyFile != want {
		t.Errorf("private-key-file: got %q, want %q", r.Server.PrivateKeyFile, want)
	}
	if r.Client.ServerName != "relay.internal" || r.Client.BackoffMin != 50*time.Millisecond {
		t.Errorf("server-name/backoff-min: got %q/%v", r.Client.ServerName, r.Client.BackoffMin)
	}
	if r.Server.Limits.MaxFrameSize != 128<<10 {
		t.Errorf("max-frame-size: got %v, want 128KiB", r.Server.Limits.MaxFrameSize)
	}
	// hub names are the user's: not normalised
	if _, ok := f.CapsuleHubs["s3-east"]; !ok {
		t.Errorf("hub s3-east missing: %v", f.CapsuleHubs)
	}
}

func TestFullFile(t *testing.T) {
	f, err := Load(filepath.Join(dir, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.RelayNames(), []string{"main", "plain"}; !cmp.Equal(got, want) {
		t.Errorf("relays: got %v, want %v", got, want)
	}
	main := f.Relays["main"]
	want := Defaults()
	want.Name = "main"
	want.Client = Client{
		URL: "tcps://relay.example.com", CACertFile: filepath.Join(dir, "certs/ca.pem"), ServerName: "relay.internal",
		ConnectTimeout: 2 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 90 * time.Second,
		Address: "relay.example.com:7420", TLS: true,
	}
	want.Server.URL = "tcps://:7421"
	want.Server.SSLCertFile = filepath.Join(dir, "certs/server.pem")
	want.Server.PrivateKeyFile = filepath.Join(dir, "certs/server.key")
	want.Server.ClientCAFile = filepath.Join(dir, "certs/ca.pem")
	want.Server.AuthorizedClients = []string{"CN=instance-1", "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"}
	want.Server.MetricsURL = "http://127.0.0.1:9420"
	want.Server.DrainGrace = 3 * time.Second
	want.Server.DrainAlternates, want.Server.DrainURLs = []string{"plain"}, []string{"tcp://127.0.0.1:7420"}
	want.Server.Limits.MaxConnections = 500
	want.Server.Limits.MaxFrameSize = 128 << 10
	want.Server.Limits.ByteRate = 1 << 20
	want.Server.Address = ":7421"
	want.Server.TLS = true
	if diff := cmp.Diff(&want, main); diff != "" {
		t.Errorf("relay main (-want +got):\n%s", diff)
	}
	if f.Continuum.Relay.String() != "main" || f.CapsuleHubs["local-disk"].Relay.String() != "plain" {
		t.Errorf("continuum/hubs: %+v %+v", f.Continuum, f.CapsuleHubs)
	}
}

func TestDefaultsApplied(t *testing.T) {
	f, err := Load(filepath.Join(dir, "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Name = "edge"
	want.Client.URL, want.Client.Address = "tcp://10.0.0.5", "10.0.0.5:7420"
	want.Server.URL, want.Server.Address = "tcp://:7420", ":7420"
	if diff := cmp.Diff(&want, f.Relays["edge"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// the documented values, spelled out once more so a changed default is noticed
	l := f.Relays["edge"].Server.Limits
	if l.MaxConnections != 10000 || l.HandshakeTimeout != 5*time.Second || l.HeartbeatInterval != 15*time.Second ||
		l.IdleTimeout != 45*time.Second || l.MaxFrameSize != 65536 || l.MaxChannels != 64 ||
		l.MaxEntrySize != 1100 || l.CacheEntries != 100000 || l.PendingEntries != 10000 || l.FrameRate != 10000 ||
		l.ChannelIdleTimeout != 10*time.Minute ||
		l.ByteRate != 8<<20 || l.MemoryBudget != 1<<30 || l.AcceptRate != 10000 {
		t.Errorf("limits: got %+v", l)
	}
	c := f.Relays["edge"].Client
	if c.ConnectTimeout != 5*time.Second || c.BackoffMin != 100*time.Millisecond || c.BackoffMax != 30*time.Second {
		t.Errorf("client: got %+v", c)
	}
	if f.Relays["edge"].Server.DrainGrace != 10*time.Second {
		t.Errorf("drain_grace: got %v", f.Relays["edge"].Server.DrainGrace)
	}
}

func TestRelayUndefined(t *testing.T) {
	f, err := Load(filepath.Join(dir, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Relay("nope")
	if !errors.Is(err, ErrUndefinedRelay) || !strings.Contains(err.Error(), "defined: main, plain") {
		t.Errorf("got %v, want ErrUndefinedRelay listing main, plain", err)
	}
}

func TestLoadOrder(t *testing.T) {
	flagFile := filepath.Join(dir, "minimal.yaml")
	envFile, err := filepath.Abs(filepath.Join(dir, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cwdYAML := "relays:\n  cwd:\n    client: {url: tcp://127.0.0.1}\n    server: {url: tcp://127.0.0.1}\n"

	tests := []struct {
		name       string
		flag, env  string
		cwdFile    bool
		wantSource Source
		wantRelay  string
	}{
		{"flag beats env and cwd", flagFile, envFile, true, SourceFlag, "edge"},
		{"env beats cwd", "", envFile, true, SourceEnv, "main"},
		{"cwd beats embedded", "", "", true, SourceCwd, "cwd"},
		{"embedded last", "", "", false, SourceEmbedded, "local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flag := tt.flag
			if flag != "" {
				abs, err := filepath.Abs(flag)
				if err != nil {
					t.Fatal(err)
				}
				flag = abs
			}
			t.Setenv(EnvVar, tt.env)
			wd := t.TempDir()
			t.Chdir(wd)
			if tt.cwdFile {
				if err := os.WriteFile(CwdFile, []byte(cwdYAML), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Load(flag)
			if err != nil {
				t.Fatal(err)
			}
			if f.Source != tt.wantSource {
				t.Errorf("source = %v, want %v", f.Source, tt.wantSource)
			}
			if _, err := f.Relay(tt.wantRelay); err != nil {
				t.Errorf("want relay %q: %v", tt.wantRelay, err)
			}
		})
	}
}

func TestEmbeddedDefault(t *testing.T) {
	t.Setenv(EnvVar, "")
	t.Chdir(t.TempDir())
	f, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Relay("local")
	if err != nil {
		t.Fatal(err)
	}
	if r.Client.URL != "tcp://127.0.0.1:7420" || r.Server.URL != "tcp://127.0.0.1:7420" || r.Client.TLS || r.Server.TLS {
		t.Errorf("local relay: %+v", r)
	}
	if f.Path != "" || f.Name() != "(embedded default)" {
		t.Errorf("path %q name %q", f.Path, f.Name())
	}
}

func TestLoadMissingConfigFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want ErrNotExist", err)
	}
}

func TestMergeKeys(t *testing.T) {
	y := `
base: &base
  client: {url: tcp://h, connect_timeout: 1s}
  server: {url: tcp://h}
`
	_, err := Parse([]byte(y), "")
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("top-level anchor holder: got %v, want ErrUnknownKey", err)
	}
	y = `
relays:
  a: &base
    client: {url: tcp://h, connect_timeout: 1s}
    server: {url: tcp://h}
  b:
    <<: *base
    client: {url: tcp://other}
`
	f, err := Parse([]byte(y), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Relays["b"]; got.Server.URL != "tcp://h" || got.Client.URL != "tcp://other" || got.Client.ConnectTimeout != 5*time.Second {
		t.Errorf("b = %+v", got)
	}
}

func TestClosest(t *testing.T) {
	valid := []string{"ssl_cert_file", "private_key_file", "client_ca_file", "url"}
	tests := []struct{ in, want string }{
		{"ssl_cert_fle", "ssl_cert_file"},
		{"private_keyfile", "private_key_file"},
		{"urll", "url"},
		{"completely_different_thing", ""},
	}
	for _, tt := range tests {
		if got := closest(tt.in, valid); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUnits(t *testing.T) {
	sizes := map[string]ByteSize{"1100": 1100, "64KiB": 65536, "8MiB": 8 << 20, "1GiB": 1 << 30, "10KB": 10000, "2 MiB": 2 << 20}
	for in, want := range sizes {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5KiB", "lots", "99999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", bad)
		}
	}
	durs := map[string]time.Duration{"15s": 15 * time.Second, "100ms": 100 * time.Millisecond, "30.5 minutes": 30*time.Minute + 30*time.Second, "15": 15 * time.Second, "2 hours": 2 * time.Hour}
	for in, want := range durs {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "5 parsecs", "-3 s"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
	if got := ByteSize(64 << 10).String(); got != "64KiB" {
		t.Errorf("String = %q", got)
	}
}

func TestCheck(t *testing.T) {
	f, err := Load(filepath.Join(dir, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f); err != nil {
		t.Errorf("Check(full.yaml) = %v", err)
	}
	f, err = Load(filepath.Join(dir, "bad_pem.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	err = Check(f)
	var e *Error
	if !errors.Is(err, ErrBadPEM) || !errors.As(err, &e) || e.Line != 5 || e.Path != "relays.main.client.ca_cert_file" {
		t.Errorf("Check(bad_pem.yaml) = %v, want ErrBadPEM at line 5 relays.main.client.ca_cert_file", err)
	}
}
