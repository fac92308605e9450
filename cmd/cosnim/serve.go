package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/cosnim/relays/internal/config"
)

// serveRelay runs the relay server named name until ctx is cancelled, then
// drains for rc.Server.DrainGrace and returns. This stub is replaced when
// the relay driver is built in; keep its signature.
func serveRelay(ctx context.Context, name string, rc *config.Relay, log *slog.Logger) error {
	return errors.New("relay server not built in yet")
}
