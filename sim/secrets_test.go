package sim

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/roster"
)

// TestLogsHoldNoSecrets runs a relay and clients with every log on, through
// joins, announces, a forged join, a reset and a relay restart, and checks
// that no secret, key, capsule reference or sealed entry reaches the logs.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secret := []byte("continuum-secret-do-not-log")
	k, err := roster.DeriveKeys(secret, "hub")
	if err != nil {
		t.Fatal(err)
	}
	net := netsim.New(3, netsim.Options{})
	rn := net.AddNode("relay")
	newRelay := func() *relay.Relay {
		r, err := relay.New(relay.Config{Logger: log}, rand.New(rand.NewPCG(1, uint64(net.Events()))))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rn.SetHandler(newRelay())
	rn.Listen(relayAddr)
	var clients []*client.Client
	for i := range 3 {
		n := net.AddNode(fmt.Sprintf("c%d", i))
		c, err := client.New(client.Config{Addrs: []string{relayAddr}, Logger: log}, n.Dialer(), rand.New(rand.NewPCG(4, uint64(i))), nil)
		if err != nil {
			t.Fatal(err)
		}
		n.SetHandler(c)
		keys := k
		if i == 2 { // joins with another continuum's keys for the same channel ID: denied
			keys, _ = roster.DeriveKeys([]byte("other"), "hub")
		}
		if err := c.Join(keys, nil, n.Now()); err != nil {
			t.Fatal(err)
		}
		c.Start(n.Now())
		clients = append(clients, c)
	}
	net.RunFor(time.Second)
	var sealed [][]byte
	var refs []string
	for i := range 5 {
		ref := fmt.Sprintf("capsule-ref-%d", i)
		refs = append(refs, ref)
		e, _ := k.Seal([]byte(ref))
		sealed = append(sealed, e.Sealed)
		if _, err := clients[i%2].Announce(k.ID(), []byte(ref), net.Now()); err != nil {
			t.Fatal(err)
		}
	}
	net.RunFor(time.Second)
	for _, c := range net.Conns() {
		net.ResetConn(c)
	}
	net.RunFor(2 * time.Second)
	rn.Restart(newRelay())
	rn.Listen(relayAddr)
	net.RunFor(10 * time.Second)
	if clients[1].Roster(k.ID()).Len() != 5 {
		t.Fatalf("client 1 holds %d entries, want 5: the run did not exercise the paths", clients[1].Roster(k.ID()).Len())
	}
	out := logs.String()
	if !strings.Contains(out, "relay connection lost") {
		t.Fatalf("logs lack the reset; is logging on?\n%s", out)
	}
	forbidden := []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)}
	forbidden = append(forbidden, refs...)
	for _, s := range sealed {
		forbidden = append(forbidden, hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), hex.EncodeToString(s[:12]))
	}
	for _, f := range forbidden {
		if strings.Contains(out, f) {
			t.Errorf("logs contain %q", f)
		}
	}
}
