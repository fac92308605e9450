package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

// TestServerConfigCarriesBackbone: `start relay` hands the server the
// file's backbone, and none when the file names none.
func TestServerConfigCarriesBackbone(t *testing.T) {
	base := "relays:\n  r:\n    client:\n      url: tcp://h\n    server:\n      url: tcp://h\n"
	f, err := config.Parse([]byte(base+"      backbone:\n        urls: [nats://n1:4222, nats://n2]\n        user: relay\n        password: pw\n        subject_prefix: cosnim.east\n        request_timeout: 750ms\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := serverConfig(f.Relays["r"], slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Backbone
	if b == nil {
		t.Fatal("no backbone handed to the server")
	}
	if !cmp.Equal(b.URLs, []string{"nats://n1:4222", "nats://n2"}) || b.User != "relay" || b.Password != "pw" ||
		b.RequestTimeout != 750*time.Millisecond || b.Name != "cosnim relay r" || cfg.BackbonePrefix != "cosnim.east" {
		t.Errorf("backbone options %+v prefix %q", *b, cfg.BackbonePrefix)
	}

	f, err = config.Parse([]byte(base), "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = serverConfig(f.Relays["r"], slog.New(slog.DiscardHandler)); err != nil || cfg.Backbone != nil {
		t.Errorf("without a backbone section: %+v, %v", cfg.Backbone, err)
	}
}
