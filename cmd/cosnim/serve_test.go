package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
)

// TestServerConfigCarriesLimits: what `start relay` hands the server is the
// file's limits, every one of them.
func TestServerConfigCarriesLimits(t *testing.T) {
	f, err := config.Load(filepath.Join(testdata, "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Relay("main")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := serverConfig(rc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Relay.MaxConnections != 500 || cfg.Relay.MaxFrameSize != 128<<10 || cfg.Relay.ByteRate != 1<<20 {
		t.Errorf("limits set in full.yaml not carried: %+v", cfg.Relay)
	}
	if !slices.Equal(cfg.DrainAlternates, []string{"tcp://127.0.0.1:7420"}) {
		t.Errorf("drain_alternates [plain] carried as %q, want plain's client URL tcp://127.0.0.1:7420", cfg.DrainAlternates)
	}
	for _, l := range relay.Limits() {
		if got, want := l.Get(cfg.Relay), l.Get(rc.Server.Limits); got != want {
			t.Errorf("%s: server gets %d, file says %d", l.Key, got, want)
		}
	}
}

// TestConfigCheckRefusesWhatRelayRefuses: the file that `config check`
// accepted before this rule came from the relay (an entry without its 64
// bytes of header) is now refused by the command, naming file, line and
// key, as relayserver.New refuses the same limits.
func TestConfigCheckRefusesWhatRelayRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cosnim.yaml")
	y := "relays:\n  r:\n    client: {url: tcp://h}\n    server:\n      url: tcp://127.0.0.1:0\n      limits:\n        max_entry_size: 65500\n"
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "config", "check", "--config", path)
	if want := path + ":7: relays.r.server.limits.max_entry_size: "; code != 1 || !strings.Contains(errs, want) {
		t.Errorf("config check: code %d, stderr %q; want 1 and %q", code, errs, want)
	}
	limits := relay.DefaultConfig()
	limits.MaxEntrySize = 65500
	rc := &config.Relay{Name: "r", Server: config.Server{Address: "127.0.0.1:0", Limits: limits}}
	cfg, err := serverConfig(rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayserver.New(cfg); err == nil {
		t.Error("relayserver.New took a max_entry_size that config check refuses")
	}
}
