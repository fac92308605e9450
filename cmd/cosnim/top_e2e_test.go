package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/relay"
)

// fillChannels joins hubs hub-0 … hub-(n-1) through an in-process Agent and
// announces i+1 entries to hub-i; the Agent stays a member of each.
func fillChannels(t *testing.T, port, metricsPort, n int) {
	t.Helper()
	a, err := agent.New(agent.Options{Addrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Secret: []byte(kitSecret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), kitTimeout)
	defer cancel()
	total := 0
	for i := range n {
		hub := fmt.Sprintf("hub-%d", i)
		if err := a.Join(hub); err != nil {
			t.Fatal(err)
		}
		if err := a.WaitCaughtUp(ctx, hub); err != nil {
			t.Fatal(err)
		}
		for j := range i + 1 {
			if err := a.AnnounceAndWait(ctx, hub, fmt.Appendf(nil, "capsule-%d-%d", i, j)); err != nil {
				t.Fatal(err)
			}
			total++
		}
	}
	if got := kitStatus(t, metricsPort).EntriesIn; got != uint64(total) {
		t.Fatalf("relay stored %d entries, want %d", got, total)
	}
}

// TestTopOnceJSON: top --once --json, without a terminal, prints one JSON
// view whose figures are the relay's: its epoch (as ping reports it), its
// connections and channels, and the ten channels with the most cached
// bytes, most first. --once alone prints the text view once.
func TestTopOnceJSON(t *testing.T) {
	port, metricsPort, cfg := startOpsRelay(t)
	fillChannels(t, port, metricsPort, relay.MaxTopChannels+2)

	code, out, errs := kitRun(t, "relay", "top", "r", "--config", cfg, "--once", "--json")
	if code != 0 {
		t.Fatalf("top: code %d, stderr %s", code, errs)
	}
	var v topView
	if err := json.Unmarshal([]byte(out), &v); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("top --once --json: want one JSON line (%v): %q", err, out)
	}
	code, pout, errs := kitRun(t, "relay", "ping", "r", "--config", cfg, "--json")
	var pr pingResult
	if code != 0 || json.Unmarshal([]byte(pout), &pr) != nil {
		t.Fatalf("ping: code %d, stdout %s, stderr %s", code, pout, errs)
	}
	st := v.Status
	if v.Relay != "r" || st.Epoch != pr.Epoch || st.Connections != 1 || st.Channels != relay.MaxTopChannels+2 {
		t.Errorf("top: relay %q, epoch %s (ping: %s), %d connections, %d channels; want r, ping's epoch, 1, %d",
			v.Relay, st.Epoch, pr.Epoch, st.Connections, st.Channels, relay.MaxTopChannels+2)
	}
	if len(st.TopChannels) != relay.MaxTopChannels {
		t.Fatalf("top channels: %+v; want %d", st.TopChannels, relay.MaxTopChannels)
	}
	for i, c := range st.TopChannels {
		// hub-k holds k+1 entries: the busiest is the last one filled.
		if want := relay.MaxTopChannels + 2 - i; c.Entries != want || c.Members != 1 || len(c.ID) != 8 || c.Bytes <= 0 {
			t.Errorf("top channel %d: %+v; want %d entries, 1 member, an 8-digit ID", i, c, want)
		}
	}
	if st.Memory.Budget == 0 || st.SendQueue == 0 || st.Uptime == "" {
		t.Errorf("top lacks the memory budget, send queue limit or uptime: %+v", st)
	}

	code, out, errs = kitRun(t, "relay", "top", "r", "--config", cfg, "--once")
	if code != 0 || strings.Count(out, "uptime") != 1 || !strings.Contains(out, "top channels by cached bytes") ||
		!strings.Contains(out, st.TopChannels[0].ID) || strings.Contains(out, "\x1b") {
		t.Errorf("top --once: code %d, stderr %s, stdout %q; want one plain view", code, errs, out)
	}

	// A relay without an operations endpoint: a clear error.
	none := kitWrite(t, t.TempDir(), "none.yaml", plainRelayYAML(port, 0, ""))
	code, _, errs = kitRun(t, "relay", "top", "r", "--config", none, "--once")
	if code == 0 || !strings.Contains(errs, "relay r has no metrics_url in its server section") {
		t.Errorf("top without metrics_url: code %d, stderr %q", code, errs)
	}
}
