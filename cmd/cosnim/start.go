package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

// serve is serveRelay; tests replace it.
var serve = serveRelay

func newStartCmd() *cobra.Command {
	return newGroupCmd("start", "Start a server", newStartRelayCmd())
}

func newStartRelayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "relay RELAY_NAME",
		Short: "Run the relay server named in the configuration",
		Long: `relay runs the server side of the named relay until it gets SIGINT or
SIGTERM; it then sends every client a Drain, serves until they have left
or drain_grace has passed (newcomers get Error 12 after their Hello),
closes the rest with Error 12 and exits. A second signal exits at once with code 130.

It refuses to start with a server certificate (ssl_cert_file,
client_ca_file) that has expired or is not yet valid, and warns about one
that expires within 30 days.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, rc, err := loadRelay(cmd, args[0])
			if err != nil {
				return err
			}
			log, err := newLogger(cmd)
			if err != nil {
				return err
			}
			log = log.With("relay", rc.Name)
			warnings, err := config.CertDates(f, time.Now(), []string{rc.Name}, config.ServerSection)
			for _, w := range warnings {
				log.Warn("certificate expires soon", "problem", w.Error())
			}
			if err != nil {
				return err
			}
			for _, w := range config.KeyPermissions(f, []string{rc.Name}, config.ServerSection) {
				log.Warn("private key open to other users", "problem", w.Error())
			}
			log.Info("starting relay", "config", f.Name(), "listen", rc.Server.Address, "tls", rc.Server.TLS)
			ctx, stop := notifyShutdown(cmd.Context(), func() {
				log.Warn("second signal: exiting at once")
				os.Exit(130)
			}, func(sig os.Signal) {
				log.Info("signal received: shutting down; send it again to exit at once", "signal", sig.String())
			})
			defer stop()
			return serve(ctx, rc.Name, rc, log)
		},
	}
}

// notifyShutdown returns a context cancelled on the first SIGINT or
// SIGTERM (after calling first); a second signal calls exit. stop releases
// the signals and must be called.
func notifyShutdown(parent context.Context, exit func(), first func(os.Signal)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-sigs:
			first(sig)
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			exit()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
