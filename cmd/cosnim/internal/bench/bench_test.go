package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLatencyPercentilesUniform(t *testing.T) {
	var h shardedHist
	// 1..10000 µs, once each, over several shards: the p-th percentile is
	// p×100 µs.
	for v := 1; v <= 10000; v++ {
		h.record(v, time.Duration(v)*time.Microsecond, 1)
	}
	var r Result
	r.setLatency(h.merged())
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"p50", r.LatencyP50us, 5000},
		{"p90", r.LatencyP90us, 9000},
		{"p99", r.LatencyP99us, 9900},
		{"p99.9", r.LatencyP999us, 9990},
		{"max", r.LatencyMaxUs, 10000},
	} {
		if diff := (tc.got - tc.want) / tc.want; diff < -0.005 || diff > 0.005 {
			t.Errorf("%s: got %vµs, want %vµs ± 0.5%%", tc.name, tc.got, tc.want)
		}
	}
	if got, want := r.LatencySamples, uint64(10000); got != want {
		t.Errorf("samples: got %d, want %d", got, want)
	}
}

func TestLatencyWeightsAndClamps(t *testing.T) {
	var h shardedHist
	h.record(0, 10*time.Microsecond, 99) // one frame of 99 entries
	h.record(1, time.Second, 1)
	var r Result
	r.setLatency(h.merged())
	if r.LatencySamples != 100 {
		t.Fatalf("samples: got %d, want 100 (one per entry)", r.LatencySamples)
	}
	if r.LatencyP99us < 9.99 || r.LatencyP99us > 10.01 {
		t.Errorf("p99: got %vµs, want 10µs", r.LatencyP99us)
	}
	if r.LatencyMaxUs < 0.999e6 || r.LatencyMaxUs > 1.001e6 {
		t.Errorf("max: got %vµs, want 1s (the one slow entry)", r.LatencyMaxUs)
	}
	h.record(2, -5, 1)            // clock skew counts as zero
	h.record(3, 100*time.Hour, 1) // over the range counts as its top, not lost
	r.setLatency(h.merged())
	if r.LatencySamples != 102 {
		t.Errorf("samples after skew and overflow: got %d, want 102", r.LatencySamples)
	}
	if want := float64(latencyMax) / 1e3; r.LatencyMaxUs < want*0.999 {
		t.Errorf("max after overflow: got %vµs, want about %vµs", r.LatencyMaxUs, want)
	}
	var empty shardedHist
	r.setLatency(empty.merged())
	if r.LatencyP50us != 0 || r.LatencySamples != 0 {
		t.Errorf("empty: got p50 %v, %d samples; want 0, 0", r.LatencyP50us, r.LatencySamples)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // substring of the error; "" for valid
	}{
		{"defaults", Options{}, ""},
		{"channels defaults", Options{Scenario: "channels"}, ""},
		{"storm defaults", Options{Scenario: "storm"}, ""},
		{"idle defaults", Options{Scenario: "idle", Idle: 5}, ""},
		{"unknown scenario", Options{Scenario: "bogus"}, "unknown scenario"},
		{"size too small", Options{Size: 20}, "--size"},
		{"size too large", Options{Size: 5000}, "--size"},
		{"batch too large", Options{Size: 1000, Batch: 100}, "--batch"},
		{"negative rate", Options{Scenario: "channels", Rate: -1}, "negative"},
		{"fanout on many channels", Options{Channels: 3}, "one channel"},
		{"channels of one client", Options{Scenario: "channels", Sub: 1}, "--sub"},
		{"more channels than clients", Options{Scenario: "idle", Idle: 5, Channels: 6}, "--channels"},
		{"storm entries over a frame", Options{Scenario: "storm", Msgs: 1000}, "one frame"},
		{"window below batch", Options{Window: 10, Batch: 64}, "--window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSealAndStamp(t *testing.T) {
	k, err := channelKeys(0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	s := newSealer(k, start, 7, 128)
	a, err := s.seal()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.seal()
	if len(a) != 128 {
		t.Fatalf("sealed entry: got %d bytes, want 128", len(a))
	}
	if string(a) == string(b) {
		t.Fatal("two entries of one publisher are equal; the relay would drop one as a duplicate")
	}
	stamp, err := stampOf(k, a)
	if err != nil {
		t.Fatal(err)
	}
	if stamp < time.Second || stamp > time.Since(start) {
		t.Fatalf("stamp %v outside [1s, %v]", stamp, time.Since(start))
	}
	other, _ := channelKeys(1)
	if _, err := stampOf(other, a); err == nil {
		t.Fatal("an entry opened with another channel's keys")
	}
}

// runTiny runs a small scenario against an in-process relay and returns
// its result as decoded JSON, so the test sees what scripts see.
func runTiny(t *testing.T, useTLS bool, o Options) map[string]any {
	t.Helper()
	tg, err := StartInProcess(useTLS, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	o.Timeout = 20 * time.Second
	r, err := Run(context.Background(), tg, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 {
		t.Fatalf("run had %d errors, first: %s", r.Errors, r.FirstError)
	}
	return m
}

func TestFanoutTinyRun(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		m := runTiny(t, useTLS, Options{Pub: 1, Sub: 2, Msgs: 200, Batch: 16})
		for _, k := range []string{"delivered_per_sec", "latency_p50_us", "latency_p99_us", "latency_max_us", "bytes_per_sec"} {
			v, ok := m[k].(float64)
			if !ok || v <= 0 {
				t.Errorf("tls=%v: %s = %v, want a positive number", useTLS, k, m[k])
			}
		}
		if got, want := m["delivered"], float64(200*2); got != want {
			t.Errorf("tls=%v: delivered %v, want msgs × subs = %v", useTLS, got, want)
		}
		if got, want := m["latency_samples"], float64(400); got != want {
			t.Errorf("tls=%v: latency samples %v, want one per delivered entry (%v)", useTLS, got, want)
		}
		p50, p99, mx := m["latency_p50_us"].(float64), m["latency_p99_us"].(float64), m["latency_max_us"].(float64)
		if p50 > p99 || p99 > mx*1.01 {
			t.Errorf("tls=%v: percentiles out of order: p50 %v, p99 %v, max %v", useTLS, p50, p99, mx)
		}
	}
}

func TestIdleTinyRun(t *testing.T) {
	const settle = time.Second // far longer than 20 joins take
	const scavenge = 200 * time.Millisecond
	start := time.Now()
	m := runTiny(t, false, Options{Scenario: ScenarioIdle, Idle: 20, Channels: 2, Settle: settle, ScavengeWait: scavenge})
	if took := time.Since(start); took < settle+scavenge {
		t.Errorf("run took %v, want at least the %v settle and the %v wait for the second reading", took, settle, scavenge)
	}
	if got := m["scavenge_seconds"]; got != scavenge.Seconds() {
		t.Errorf("scavenge_seconds %v, want %v", got, scavenge.Seconds())
	}
	if got := m["settle_seconds"]; got != settle.Seconds() {
		t.Errorf("settle_seconds %v, want %v", got, settle.Seconds())
	}
	if _, ok := m["bytes_per_conn"].(float64); !ok {
		t.Fatalf("bytes_per_conn = %v, want a number", m["bytes_per_conn"])
	}
	if got := m["conns"]; got != float64(20) {
		t.Fatalf("conns %v, want 20", got)
	}
	if got := (Options{Scenario: ScenarioIdle}).WithDefaults().Settle; got != DefaultIdleSettle {
		t.Errorf("default settle %v, want DefaultIdleSettle %v", got, DefaultIdleSettle)
	}
	if got := (Options{Scenario: ScenarioIdle}).WithDefaults().ScavengeWait; got != DefaultScavengeWait {
		t.Errorf("default scavenge wait %v, want DefaultScavengeWait %v", got, DefaultScavengeWait)
	}
}

func TestStormTinyRun(t *testing.T) {
	m := runTiny(t, true, Options{Scenario: ScenarioStorm, Idle: 20, Channels: 4, Jitter: 10 * time.Millisecond})
	if got := m["resynced"]; got != float64(20) {
		t.Fatalf("resynced %v, want 20", got)
	}
	if s, _ := m["resync_seconds"].(float64); s <= 0 {
		t.Fatalf("resync_seconds %v, want > 0", m["resync_seconds"])
	}
}

func TestChannelsTinyRun(t *testing.T) {
	m := runTiny(t, false, Options{Scenario: ScenarioChannels, Channels: 3, Sub: 3, Rate: 900, Batch: 4, Duration: 300 * time.Millisecond})
	if d, _ := m["delivered"].(float64); d <= 0 {
		t.Fatalf("delivered %v, want > 0", m["delivered"])
	}
	if d, p := m["delivered"].(float64), m["published"].(float64); d > 2*p {
		t.Fatalf("delivered %v > 2 × published %v with 3 clients per channel", d, p)
	}
}
