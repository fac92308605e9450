// Package timerq is a deterministic timer queue for the event-driven cores:
// timers fire in (time, insertion sequence) order, so two timers due at the
// same instant always fire in the order they were set.
package timerq

import (
	"container/heap"
	"time"
)

// Queue holds timers carrying values of type T. The zero value is ready.
type Queue[T any] struct {
	items items[T]
	seq   uint64
}

type item[T any] struct {
	at  time.Time
	seq uint64
	v   T
}

type items[T any] []item[T]

func (h items[T]) Len() int { return len(h) }
func (h items[T]) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h items[T]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *items[T]) Push(x any)   { *h = append(*h, x.(item[T])) }
func (h *items[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	var zero item[T]
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	return it
}

// Add sets a timer for v at t.
func (q *Queue[T]) Add(t time.Time, v T) {
	q.seq++
	heap.Push(&q.items, item[T]{at: t, seq: q.seq, v: v})
}

// Next reports the earliest timer.
func (q *Queue[T]) Next() (time.Time, bool) {
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].at, true
}

// PopDue removes and returns the earliest timer if it is due at now.
func (q *Queue[T]) PopDue(now time.Time) (T, bool) {
	if len(q.items) == 0 || q.items[0].at.After(now) {
		var zero T
		return zero, false
	}
	return heap.Pop(&q.items).(item[T]).v, true
}

// Len reports the number of timers set.
func (q *Queue[T]) Len() int { return len(q.items) }
