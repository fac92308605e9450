package value

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestStorageEventualAndPaged(t *testing.T) {
	s, err := NewStorage(StorageConfig{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var vis []time.Time
	for i := range 5 {
		v := s.Write(i, t0, rng)
		if v.Before(t0) || v.After(t0.Add(time.Second)) {
			t.Fatalf("capsule %d visible at %v, want within 1s of the write", i, v.Sub(t0))
		}
		vis = append(vis, v)
	}
	l := s.List(t0.Add(-time.Nanosecond))
	if len(l.Capsules) != 0 || l.Pages != 1 || l.Took != 100*time.Millisecond {
		t.Errorf("empty listing: got %d capsules, %d pages, took %v; want 0, 1, 100ms", len(l.Capsules), l.Pages, l.Took)
	}
	mid := t0.Add(500 * time.Millisecond)
	var want []int
	for i, v := range vis {
		if !v.After(mid) {
			want = append(want, i)
		}
	}
	if l := s.List(mid); !slices.Equal(l.Capsules, want) {
		t.Errorf("listing at 0.5s: got %v, want %v", l.Capsules, want)
	}
	l = s.List(t0.Add(time.Second))
	if len(l.Capsules) != 5 || l.Pages != 3 || l.Took != 300*time.Millisecond || l.Bytes != 500 {
		t.Errorf("full listing: got %d capsules, %d pages, %v, %d bytes; want 5, 3, 300ms, 500", len(l.Capsules), l.Pages, l.Took, l.Bytes)
	}
	if got, want := s.Queries(), uint64(1+1+3); got != want {
		t.Errorf("queries: got %d, want %d", got, want)
	}
}

func TestStorageConfigValidate(t *testing.T) {
	if _, err := NewStorage(StorageConfig{PageSize: -1}); err == nil {
		t.Error("negative page size accepted")
	}
	if got := (StorageConfig{}).WithDefaults(); got != DefaultStorageConfig() {
		t.Errorf("got %+v, want %+v", got, DefaultStorageConfig())
	}
}
