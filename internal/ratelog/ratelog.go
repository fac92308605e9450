// Package ratelog limits log lines a flood can cause: a slog.Handler that
// passes at most Burst records with one message per Window, then counts
// the rest and writes one summary when the window ends. Drivers wrap their
// loggers with it, so that a flood of refused handshakes or mismatched
// clients writes a few lines and a count, not a line each. (The relay core
// limits its own per-connection lines by event time, deterministically.)
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults for New.
const (
	Burst  = 20
	Window = time.Second
)

// Handler is the limiting slog.Handler.
type Handler struct {
	inner slog.Handler
	st    *state // shared by handlers derived with WithAttrs and WithGroup
}

type state struct {
	now func() time.Time

	mu    sync.Mutex // guards gates
	gates map[string]*gate
}

type gate struct {
	start      time.Time
	lines      int
	suppressed int
}

// New wraps inner; now is the clock (nil: time.Now).
func New(inner slog.Handler, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{inner: inner, st: &state{now: now, gates: map[string]*gate{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler: the record passes, or is counted.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	pass, summary := h.st.admit(r.Message)
	if summary > 0 {
		s := slog.NewRecord(r.Time, r.Level, "log lines suppressed", 0)
		s.AddAttrs(slog.String("msg_suppressed", r.Message), slog.Int("count", summary), slog.Duration("window", Window))
		if err := h.inner.Handle(ctx, s); err != nil {
			return err
		}
	}
	if !pass {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

// admit decides for one record of msg, and reports what the window that
// just ended suppressed.
func (s *state) admit(msg string) (pass bool, summary int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gates[msg]
	if g == nil {
		// Messages are constants of the code, so the map stays small.
		g = &gate{start: now}
		s.gates[msg] = g
	}
	if now.Sub(g.start) >= Window {
		summary = g.suppressed
		*g = gate{start: now}
	}
	if g.lines < Burst {
		g.lines++
		return true, summary
	}
	g.suppressed++
	return false, summary
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), st: h.st}
}
