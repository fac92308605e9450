package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/conformance"
	"github.com/cosnim/relays/transport/tcp"
)

func newConformanceCmd() *cobra.Command {
	var asJSON bool
	var timeout, drainWait time.Duration
	var caFile, certFile, keyFile, serverName string
	cmd := &cobra.Command{
		Use:   "conformance URL",
		Short: "Check a relay, any implementation, against PROTOCOL.md",
		Long: `conformance connects to the relay at URL (tcp://HOST[:PORT] or
tcps://HOST[:PORT]) and drives it through the numbered requirements of
PROTOCOL.md: the handshake and limits, framing and malformed frames, join,
deny and leave, announce, ack and fan-out without echo, catch-up of none, a
few and 20,000 entries, heartbeats, and every error code it can provoke with
its fatality. It prints one line per requirement ("§6.3 pass",
"§12.2 FAIL: got EOF, want fatal Error 12 ...") and exits 1 if any failed.

It uses channels of a continuum secret drawn at random for the run, so no
real instance's channel is touched. Checks that need a relay state it cannot
bring about (a full relay, a small cache, short timeouts) are skipped and say
why. The drain checks run only with --drain-wait: stop the relay (SIGTERM)
when the command prints "stop the relay now".

For tcps:// give --ca-cert-file (unless the system trusts the relay's
certificate) and, for a relay that authorizes clients, --cert-file and
--key-file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scheme, addr, err := tcp.ParseURL(args[0])
			if err != nil {
				return err
			}
			opts := conformance.Options{Timeout: timeout, TLS: scheme == tcp.SchemeTCPS, Progress: cmd.ErrOrStderr()}
			dialTLS := tcp.NetDialer(nil)
			if opts.TLS {
				tc, err := tcp.ClientTLSConfig(caFile, certFile, keyFile, serverName)
				if err != nil {
					return err
				}
				dialTLS = tcp.NetDialer(tc)
			}
			opts.Dial = func(ctx context.Context) (net.Conn, error) { return dialTLS(ctx, addr) }
			plain := tcp.NetDialer(nil)
			opts.DialRaw = func(ctx context.Context) (net.Conn, error) { return plain(ctx, addr) }
			if drainWait > 0 {
				opts.DrainTimeout = drainWait
				opts.Drain = func() {} // the operator stops the relay
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			// Reach the relay once first, so a wrong URL or certificate is
			// one clear error rather than a page of failures.
			if err := reachable(ctx, opts); err != nil {
				return fmt.Errorf("relay at %s: %w", addr, explainDial(err, opts.TLS))
			}
			rep := conformance.Run(ctx, opts)
			var failed error
			if !rep.OK() {
				failed = fmt.Errorf("%d requirements failed", rep.Failed)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rep, failed)
			}
			rep.WriteText(out)
			if failed != nil {
				return &exitError{code: 1, reported: true, err: failed}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "wait this long for each answer")
	cmd.Flags().DurationVar(&drainWait, "drain-wait", 0, "after the other checks, wait this long for the relay to drain (stop it meanwhile); 0 skips the drain checks")
	cmd.Flags().StringVar(&caFile, "ca-cert-file", "", "CA certificates that sign the relay's certificate (tcps)")
	cmd.Flags().StringVar(&certFile, "cert-file", "", "client certificate, for a relay that authorizes clients (tcps)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the client certificate's key (tcps)")
	cmd.Flags().StringVar(&serverName, "server-name", "", "name to check in the relay's certificate (default: the URL's host)")
	return cmd
}

// reachable dials once and closes.
func reachable(ctx context.Context, opts conformance.Options) error {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	nc, err := opts.Dial(ctx)
	if err != nil {
		return err
	}
	return errors.Join(nc.Close())
}
