package agent

import (
	"bytes"
	"net"
	"testing"

	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/roster"
)

// Real instances derive channel keys from the stretched secret, not from
// the passphrase itself, and the Agent keeps only the stretched value.
func TestAgentStretchesSecret(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: Join works without a relay
	raw := []byte("my continuum secret")
	a, err := New(Options{Addrs: []string{addr}, Secret: raw})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Join("hub-1"); err != nil {
		t.Fatal(err)
	}
	stretched, err := secret.Stretch(raw)
	if err != nil {
		t.Fatal(err)
	}
	want, err := roster.DeriveKeys(stretched, "hub-1")
	if err != nil {
		t.Fatal(err)
	}
	unstretched, err := roster.DeriveKeys(raw, "hub-1")
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	got := a.hubs["hub-1"].keys.ID()
	a.mu.Unlock()
	if got != want.ID() || got == unstretched.ID() {
		t.Fatalf("channel ID %x, want %x (stretched secret), not %x (raw)", got, want.ID(), unstretched.ID())
	}
	if bytes.Contains(a.secret, raw) {
		t.Fatal("the Agent keeps the raw secret")
	}
}
