package timerq

import (
	"testing"
	"time"
)

func TestOrder(t *testing.T) {
	var q Queue[string]
	base := time.Unix(1000, 0)
	q.Add(base.Add(2*time.Second), "c")
	q.Add(base.Add(time.Second), "a")
	q.Add(base.Add(time.Second), "b")
	if at, ok := q.Next(); !ok || !at.Equal(base.Add(time.Second)) {
		t.Fatalf("Next = %v, %v; want %v", at, ok, base.Add(time.Second))
	}
	if _, ok := q.PopDue(base); ok {
		t.Fatal("PopDue fired a timer before it was due")
	}
	var got []string
	for {
		v, ok := q.PopDue(base.Add(2 * time.Second))
		if !ok {
			break
		}
		got = append(got, v)
	}
	if want := "abc"; len(got) != 3 || got[0]+got[1]+got[2] != want {
		t.Fatalf("fired %v; want a, b, c in order", got)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d after draining; want 0", q.Len())
	}
}
