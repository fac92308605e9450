package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
)

// poolBase defines relays east-1..east-3; a test appends its relay lines.
var poolBase = func() string {
	var b strings.Builder
	b.WriteString("relays:\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "  east-%d:\n    client:\n      url: tcp://h%d\n    server:\n      url: tcp://:%d\n", i, i, 7420+i)
	}
	return b.String()
}()

func TestRelayRefForms(t *testing.T) {
	for _, tt := range []struct {
		name       string
		yaml       string
		pool       []string
		homes      int
		hysteresis time.Duration
	}{
		{"one name", "continuum:\n  relay: east-2\n", []string{"east-2"}, 1, client.DefaultHysteresis},
		{"list", "continuum:\n  relay: [east-3, east-1]\n", []string{"east-3", "east-1"}, 2, client.DefaultHysteresis},
		{"block list", "continuum:\n  relay:\n    - east-1\n    - east-2\n    - east-3\n", []string{"east-1", "east-2", "east-3"}, 2, client.DefaultHysteresis},
		{"mapping", "continuum:\n  relay: {pool: [east-1, east-2, east-3], homes: 3, hysteresis: 30s}\n", []string{"east-1", "east-2", "east-3"}, 3, 30 * time.Second},
		{"mapping with defaults", "continuum:\n  relay:\n    pool: [east-1]\n", []string{"east-1"}, 1, client.DefaultHysteresis},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(poolBase+tt.yaml), "")
			if err != nil {
				t.Fatal(err)
			}
			r := f.Continuum.Relay
			if !slices.Equal(r.Pool, tt.pool) || r.HomesOrDefault() != tt.homes || r.HysteresisOrDefault() != tt.hysteresis {
				t.Fatalf("got pool %q homes %d hysteresis %v, want %q %d %v", r.Pool, r.HomesOrDefault(), r.HysteresisOrDefault(), tt.pool, tt.homes, tt.hysteresis)
			}
		})
	}
}

func TestHubRelayFallsBackToContinuum(t *testing.T) {
	f, err := Parse([]byte(poolBase+"continuum:\n  relay: [east-1, east-2]\ncapsule_hubs:\n  s3:\n    relay: east-3\n  gcs: {}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.HubRelay("s3").Pool; !slices.Equal(got, []string{"east-3"}) {
		t.Errorf("s3 uses %q, want its own east-3", got)
	}
	if got := f.HubRelay("gcs"); !got.Has("east-2") || got.Has("east-3") {
		t.Errorf("gcs uses %q, want the continuum's pool", got.Pool)
	}
}

func TestRelayRefErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		yaml     string
		sentinel error
		path     string
		line     int
		contains string
	}{
		{"undefined in list", "continuum:\n  relay: [east-1, est-2]\n", ErrUndefinedRelay, "continuum.relay.1", 18, "did you mean `east-2`?"},
		{"undefined in block list", "capsule_hubs:\n  s3:\n    relay:\n      - east-1\n      - east-4\n", ErrUndefinedRelay, "capsule_hubs.s3.relay.1", 21, `"east-4"`},
		{"undefined single", "continuum:\n  relay: east-9\n", ErrUndefinedRelay, "continuum.relay", 18, "did you mean"},
		{"duplicate", "continuum:\n  relay: [east-1, east-2, east-1]\n", ErrInvalid, "continuum.relay.2", 18, "listed twice (first at line 18)"},
		{"undefined in mapping", "continuum:\n  relay:\n    pool: [east-1, easy-3]\n", ErrUndefinedRelay, "continuum.relay.pool.1", 19, "did you mean `east-3`?"},
		{"homes over pool", "continuum:\n  relay: {pool: [east-1, east-2], homes: 3}\n", ErrInvalid, "continuum.relay.homes", 18, "between 1 and the pool's 2"},
		{"homes zero", "continuum:\n  relay:\n    pool: [east-1]\n    homes: 0\n", ErrInvalid, "continuum.relay.homes", 20, "between 1"},
		{"empty pool", "continuum:\n  relay: {pool: []}\n", ErrRequired, "continuum.relay.pool", 18, "names no relay"},
		{"unknown mapping key", "continuum:\n  relay: {pool: [east-1], homez: 1}\n", ErrUnknownKey, "continuum.relay.homez", 18, "did you mean `homes`?"},
		{"number as a name", "continuum:\n  relay: [east-1, 7]\n", ErrWrongType, "continuum.relay.1", 18, "expected a relay name"},
		{"bad hysteresis", "continuum:\n  relay: {pool: [east-1], hysteresis: soon}\n", ErrWrongType, "continuum.relay.hysteresis", 18, "expected a duration"},
		{"negative hysteresis", "continuum:\n  relay: {pool: [east-1], hysteresis: -1s}\n", ErrInvalid, "continuum.relay.hysteresis", 18, "negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(poolBase+tt.yaml), "pools.yaml")
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v, want Errors", err)
			}
			for _, e := range es {
				if errors.Is(e, tt.sentinel) && e.Path == tt.path {
					if e.Line != tt.line || !strings.Contains(e.Error(), tt.contains) || !strings.HasPrefix(e.Error(), fmt.Sprintf("pools.yaml:%d: %s: ", tt.line, tt.path)) {
						t.Fatalf("got %q (line %d), want line %d containing %q", e.Error(), e.Line, tt.line, tt.contains)
					}
					return
				}
			}
			t.Fatalf("want %v at %q, got:\n%v", tt.sentinel, tt.path, err)
		})
	}
}

// A pool's relays share one backbone: all or none, on one prefix.
func TestPoolSharesOneBackbone(t *testing.T) {
	relays := func(bb ...string) string {
		var b strings.Builder
		b.WriteString("relays:\n")
		for i, x := range bb {
			fmt.Fprintf(&b, "  east-%d:\n    client:\n      url: tcp://h%d\n    server:\n      url: tcp://:%d\n", i+1, i+1, 7421+i)
			if x != "" {
				fmt.Fprintf(&b, "      backbone: {url: nats://n:4222, subject_prefix: %s}\n", x)
			}
		}
		return b.String()
	}
	pool := "continuum:\n  relay: [east-1, east-2, east-3]\n"
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"all on one prefix", relays("cosnim", "cosnim", "cosnim") + pool, ""},
		{"none", relays("", "", "") + pool, ""},
		{"some", relays("cosnim", "", "cosnim") + pool, "east-1, east-3 name one (server.backbone), east-2 do not"},
		{"two prefixes", relays("a", "b", "a") + pool, `east-1, east-3 on "a"; east-2 on "b"`},
		{"separate pools may differ", relays("a", "b", "") + "capsule_hubs:\n  x: {relay: east-1}\n  y: {relay: east-2}\n  z: {relay: east-3}\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "continuum.relay")):
				t.Fatalf("got %v, want an error at continuum.relay with %q", err, tt.want)
			}
		})
	}
}

// server.drain_alternates names relays; Load gives their client URLs.
func TestDrainAlternates(t *testing.T) {
	f, err := Parse([]byte(poolBase+"    # east-3's server section continues\n      drain_alternates: [east-2, east-1]\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Relays["east-3"].Server.DrainURLs; !slices.Equal(got, []string{"tcp://h2:7420", "tcp://h1:7420"}) {
		t.Errorf("east-3 drains to %q, want tcp://h2:7420 tcp://h1:7420", got)
	}
	for _, tt := range []struct{ alt, want string }{
		{"east-4", "relay \"east-4\" is not defined"},
		{"east-3", "names itself"},
	} {
		_, err := Parse([]byte(poolBase+"      drain_alternates: ["+tt.alt+"]\n"), "")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "relays.east-3.server.drain_alternates.0") {
			t.Errorf("drain_alternates [%s]: got %v, want %q at relays.east-3.server.drain_alternates.0", tt.alt, err, tt.want)
		}
	}
}
