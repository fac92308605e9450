package nats

import "testing"

// waitSubscribed waits until the writer has applied n subscriptions and
// the server has seen them (a flush after the SUBs).
func (b *Bus) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "subscriptions applied", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.subs) == n && b.nc != nil
	})
	b.mu.Lock()
	nc := b.nc
	b.mu.Unlock()
	if err := nc.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}
