package defaults

import (
	"log/slog"
	"testing"
	"time"
)

func TestLogger(t *testing.T) {
	if Logger(nil) == nil {
		t.Fatal("Logger(nil) = nil, want a discarding logger")
	}
	l := slog.Default()
	if got := Logger(l); got != l {
		t.Fatalf("Logger(l) = %p, want l (%p)", got, l)
	}
}

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ v, want time.Duration }{
		{-time.Second, time.Minute},
		{0, time.Minute},
		{time.Second, time.Second},
	} {
		if got := Positive(tc.v, time.Minute); got != tc.want {
			t.Errorf("Positive(%v, 1m) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
