package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in nanoseconds from 1 ns to latencyMax, to three
// significant digits (0.1%); longer ones count as latencyMax.
const latencyMax = int64(10 * time.Minute)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, latencyMax, 3) }

// shardedHist lets many goroutines record latencies with little contention.
// A run has one, not one per client: a histogram of this range takes about
// 250 KiB.
type shardedHist struct {
	shards [16]struct {
		mu sync.Mutex // guards h
		h  *hdrhistogram.Histogram
	}
}

// record adds n observations of d to shard i. Clock skew below zero counts
// as zero.
func (s *shardedHist) record(i int, d time.Duration, n int) {
	if n <= 0 {
		return
	}
	v := min(max(int64(d), 0), latencyMax)
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	if sh.h == nil {
		sh.h = newHist()
	}
	sh.h.RecordValues(v, int64(n)) // v is in range: no error
	sh.mu.Unlock()
}

// merged returns the shards' observations in one histogram.
func (s *shardedHist) merged() *hdrhistogram.Histogram {
	h := newHist()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if sh.h != nil {
			h.Merge(sh.h)
		}
		sh.mu.Unlock()
	}
	return h
}

// setLatency fills the latency fields from h.
func (r *Result) setLatency(h *hdrhistogram.Histogram) {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	r.LatencyP50us = us(h.ValueAtQuantile(50))
	r.LatencyP90us = us(h.ValueAtQuantile(90))
	r.LatencyP99us = us(h.ValueAtQuantile(99))
	r.LatencyP999us = us(h.ValueAtQuantile(99.9))
	r.LatencyMaxUs = us(h.Max())
	r.LatencySamples = uint64(h.TotalCount())
}
