package relayserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/cosnim/relays/internal/buildinfo"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/internal/testutil"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/relay/relayserver"
)

// TestOperationsReportVersionAndMemory checks what an operator needs to
// tell builds apart and to alert on the memory budget: the build in
// /status, in cosnim_build_info and in the "relay listening" log line, and
// the accounted memory beside its budget.
func TestOperationsReportVersionAndMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	const budget = 64 << 20
	var logs testutil.SyncBuffer
	s := testrelay.Start(t, relayserver.Config{
		MetricsAddr: "127.0.0.1:0",
		Relay:       relay.Config{MemoryBudget: budget},
		Logger:      slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	a := newAgent(t, s.Addr().String(), nil)
	if err := a.Join("hub"); err != nil {
		t.Fatal(err)
	}
	if err := a.AnnounceAndWait(ctxT(t), "hub", []byte("capsule-1")); err != nil {
		t.Fatal(err)
	}
	want := buildinfo.Get()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitTimeout}
	get := func(path string) string {
		t.Helper()
		resp, err := hc.Get("http://" + s.MetricsAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %v", path, resp.StatusCode, err)
		}
		return string(b)
	}

	var st relayserver.Status
	if body := get("/status"); json.Unmarshal([]byte(body), &st) != nil || st.Version != want {
		t.Errorf("/status version = %+v, want %+v", st.Version, want)
	}
	if m := st.Memory; m.Total != m.MemoryUsage.Total() || m.Conns <= 0 || m.Caches <= 0 || m.Budget != budget || m.RSS <= 0 {
		t.Errorf("/status memory = %+v, want its parts (conns and caches above 0), their total, the budget and RSS", m)
	}

	samples := parseSamples(get("/metrics"))
	info := fmt.Sprintf(`cosnim_build_info{go_version=%q,revision=%q,version=%q}`, want.GoVersion, want.Revision, want.Version)
	if v, ok := samples[info]; !ok || v != 1 {
		t.Errorf("/metrics: %s = %v (present %v), want 1", info, v, ok)
	}
	if v := samples["cosnim_relay_memory_budget_bytes"]; v != budget {
		t.Errorf("cosnim_relay_memory_budget_bytes = %v, want %d", v, budget)
	}
	if v := samples["cosnim_relay_memory_bytes"]; v <= 0 || v >= budget {
		t.Errorf("cosnim_relay_memory_bytes = %v, want above 0 (a member and an entry) and below the budget", v)
	}

	a.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	var rec struct{ Msg, Version string }
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "relay listening" {
			break
		}
	}
	if rec.Msg != "relay listening" || rec.Version != want.String() {
		t.Errorf("listening log %+v, want version %q", rec, want.String())
	}
}

// parseSamples maps each sample of a Prometheus text exposition, written
// as NAME{LABELS}, to its value.
func parseSamples(text string) map[string]float64 {
	m := make(map[string]float64)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
