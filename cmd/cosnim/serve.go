package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/transport/tcp"
)

// serveRelay runs the relay server named name until ctx is cancelled, then
// drains for rc.Server.DrainGrace and returns.
func serveRelay(ctx context.Context, name string, rc *config.Relay, log *slog.Logger) error {
	cfg, err := serverConfig(rc, log)
	if err != nil {
		return err
	}
	s, err := relayserver.New(cfg)
	if err != nil {
		return fmt.Errorf("relay %s: %w", name, err)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(relayserver.MemoryLimit(cfg.Relay.WithDefaults().MemoryBudget))
	}
	return s.Run(ctx)
}

// serverConfig maps a relay's server section onto the driver's settings.
func serverConfig(rc *config.Relay, log *slog.Logger) (relayserver.Config, error) {
	sv := rc.Server
	cfg := relayserver.Config{
		Relay:           sv.Limits, // already checked by relay.Config.Validate in config.Load
		Addr:            sv.Address,
		Logger:          log,
		DrainGrace:      sv.DrainGrace,
		DrainAlternates: sv.DrainURLs,
	}
	if sv.Backbone.Enabled() {
		o := sv.Backbone.Options()
		o.Name = "cosnim relay " + rc.Name // how NATS monitoring names the connection
		cfg.Backbone, cfg.BackbonePrefix = &o, sv.Backbone.SubjectPrefix
	}
	if sv.MetricsURL != "" {
		u, err := url.Parse(sv.MetricsURL)
		if err != nil {
			return cfg, fmt.Errorf("relay %s: metrics_url: %w", rc.Name, err)
		}
		cfg.MetricsAddr = u.Host
	}
	if sv.TLS {
		tc, reloader, err := tcp.ServerTLSConfig(sv.SSLCertFile, sv.PrivateKeyFile, sv.ClientCAFile, sv.AuthorizedClients)
		if err != nil {
			return cfg, fmt.Errorf("relay %s: %w", rc.Name, err)
		}
		reloader.SetLogger(log)
		tc.MinVersion = tls.VersionTLS12
		if sv.TLSPostQuantum {
			tc.CurvePreferences = nil // Go's default: hybrid post-quantum exchanges first
		}
		cfg.TLS = tc
	}
	return cfg, nil
}
