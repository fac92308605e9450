package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a reported value is within 1/2^(subBits+1) (0.4%) of the truth.
const subBits = 7

const subCount = 1 << subBits

// Hist is a log-linear histogram of durations: exact below 128 ns, then
// 128 buckets per power of two. It records in constant time without
// allocating; merge histograms of several goroutines with Merge.
type Hist struct {
	counts [64 * subCount]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(uint64(v)) - subBits - 1
	return subCount + exp*subCount + int(uint64(v)>>uint(exp)) - subCount
}

// bucketMid returns the middle of bucket i's range of values.
func bucketMid(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	exp := (i - subCount) / subCount
	sub := (i - subCount) % subCount
	lo := int64(subCount+sub) << uint(exp)
	return lo + (int64(1)<<uint(exp))/2
}

// Record adds n observations of d. Negative durations count as 0.
func (h *Hist) Record(d time.Duration, n int) {
	v := max(int64(d), 0)
	if n <= 0 {
		return
	}
	if h.total == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.counts[bucketOf(v)] += uint64(n)
	h.total += uint64(n)
	h.sum += float64(v) * float64(n)
}

// Merge adds o's observations to h.
func (h *Hist) Merge(o *Hist) {
	if o.total == 0 {
		return
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
}

// Count returns the number of observations.
func (h *Hist) Count() uint64 { return h.total }

// Max returns the largest observation, exactly.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Mean returns the mean observation.
func (h *Hist) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Percentile returns the smallest recorded value v (to the histogram's
// precision) such that at least p percent of observations are ≤ v. p is
// clamped to 0..100; an empty histogram gives 0.
func (h *Hist) Percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	p = min(max(p, 0), 100)
	rank := uint64(math.Ceil(p / 100 * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := min(max(bucketMid(i), h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
