package defaults

import "log/slog"

// Logger returns l, or a logger that discards everything if l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Positive returns v if it is positive and def otherwise: zero and
// negative values both mean "unset".
func Positive[T ~int | ~int32 | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
