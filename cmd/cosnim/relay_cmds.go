package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/config"
	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// EnvContinuumKey holds the continuum secret when --continuum-key-file is
// not given.
const EnvContinuumKey = "COSNIM_CONTINUUM_KEY"

// relayFromArgs loads the configuration and returns the named relay.
func relayFromArgs(cmd *cobra.Command, name string) (*config.Relay, *slog.Logger, error) {
	_, rc, err := loadRelay(cmd, name)
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(cmd)
	if err != nil {
		return nil, nil, err
	}
	return rc, log.With("relay", rc.Name), nil
}

// clientTLS builds the TLS settings of a relay's client section; nil for
// tcp://.
func clientTLS(c config.Client) (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	return tcp.ClientTLSConfig(c.CACertFile, c.CertFile, c.KeyFile, c.ServerName)
}

// continuumSecret reads the secret from --continuum-key-file, else from
// $COSNIM_CONTINUUM_KEY. Surrounding white space (a trailing newline) is
// not part of it. A file that others can read is warned about on stderr.
func continuumSecret(cmd *cobra.Command) ([]byte, error) {
	file, _ := cmd.Flags().GetString("continuum-key-file")
	var secret []byte
	switch {
	case file != "":
		b, err := files.Read(file, files.MaxSecret)
		if err != nil {
			return nil, fmt.Errorf("--continuum-key-file: %w", err)
		}
		if mode, loose := files.LoosePermissions(file); loose {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: --continuum-key-file %s has mode %04o: its group or other users can read the continuum secret; chmod 600 it\n", file, mode)
		}
		secret = bytes.TrimSpace(b)
	default:
		secret = []byte(strings.TrimSpace(os.Getenv(EnvContinuumKey)))
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("no continuum secret: give --continuum-key-file FILE or set $%s", EnvContinuumKey)
	}
	return secret, nil
}

// newRelayAgent starts an Agent on a relay's client section.
func newRelayAgent(cmd *cobra.Command, rc *config.Relay, log *slog.Logger) (*agent.Agent, error) {
	secret, err := continuumSecret(cmd)
	if err != nil {
		return nil, err
	}
	tc, err := clientTLS(rc.Client)
	if err != nil {
		return nil, err
	}
	return agent.New(agent.Options{
		Addrs:          []string{rc.Client.Address},
		TLS:            tc,
		Secret:         secret,
		Agent:          "cosnim-cli",
		ConnectTimeout: rc.Client.ConnectTimeout,
		BackoffMin:     rc.Client.BackoffMin,
		BackoffMax:     rc.Client.BackoffMax,
		Logger:         log,
	})
}

// joinedAgent starts an Agent on the client section of the relay named
// name and joins hubs.
func joinedAgent(cmd *cobra.Command, name string, hubs []string) (*agent.Agent, *slog.Logger, error) {
	rc, log, err := relayFromArgs(cmd, name)
	if err != nil {
		return nil, nil, err
	}
	a, err := newRelayAgent(cmd, rc, log)
	return joinHubs(a, log, hubs, err)
}

// joinHubs joins a (started with err) to hubs, closing it on failure.
func joinHubs(a *agent.Agent, log *slog.Logger, hubs []string, err error) (*agent.Agent, *slog.Logger, error) {
	if err != nil {
		return nil, nil, err
	}
	for _, h := range hubs {
		if err := a.Join(h); err != nil {
			a.Close()
			return nil, nil, err
		}
	}
	return a, log, nil
}

// loadRelay loads the configuration and finds relay name in it.
func loadRelay(cmd *cobra.Command, name string) (*config.File, *config.Relay, error) {
	f, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	rc, err := f.Relay(name)
	if err != nil {
		return nil, nil, err
	}
	return f, rc, nil
}

// writeJSON prints res indented; a failed command (err) still prints its
// result, then exits 1 without repeating the error.
func writeJSON(out io.Writer, res any, err error) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(res); encErr != nil {
		return encErr
	}
	if err != nil {
		return &exitError{code: 1, reported: true, err: err}
	}
	return nil
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// --- ping ---

// pingResult is the --json output of `relay ping`.
type pingResult struct {
	Relay       string            `json:"relay"`
	Address     string            `json:"address"`
	TLS         bool              `json:"tls"`
	Version     uint16            `json:"version"`
	Epoch       string            `json:"epoch"`
	ConnectMs   float64           `json:"connect_ms"`
	HandshakeMs float64           `json:"handshake_ms"`
	RTTMs       float64           `json:"rtt_ms"`
	Limits      map[string]uint64 `json:"limits"`
	Error       string            `json:"error,omitempty"`
}

func newPingCmd() *cobra.Command {
	var asJSON bool
	var timeout time.Duration
	var hub string
	cmd := &cobra.Command{
		Use:   "ping RELAY_NAME... | ping --hub HUB",
		Short: "Connect to relays, handshake and measure a round trip",
		Long: `ping connects to each relay with its client section (TLS and client
certificate included), completes the protocol handshake, sends one Ping and
reports the round-trip time, the relay's epoch and the limits it advertises.
With --hub instead of names it pings every relay of the hub's relay or pool.
Relays are pinged at once; each gets its own report. A TLS or
authorization failure is reported clearly, and the command exits non-zero
when any relay failed. --json prints one object, or an array for several.`,
		Example: `  cosnim relay ping local
  cosnim relay ping east-1 east-2 east-3
  cosnim relay ping --hub hub-a --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, relays, err := relayTargets(cmd, args, []string{hub})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			results := make([]*pingResult, len(relays))
			done := make(chan struct{})
			for i, rc := range relays {
				go func() {
					defer func() { done <- struct{}{} }()
					results[i] = pingRelay(ctx, rc)
				}()
			}
			for range relays {
				<-done
			}
			var failed []string
			for _, r := range results {
				if r.Error != "" {
					failed = append(failed, r.Relay)
				}
			}
			err = nil
			if len(failed) > 0 {
				err = fmt.Errorf("%d of %d relays failed: %s", len(failed), len(relays), strings.Join(failed, ", "))
			}
			if asJSON {
				return writeJSONList(cmd, results, err)
			}
			out := cmd.OutOrStdout()
			for _, res := range results {
				if res.Error != "" {
					if len(results) == 1 {
						return errors.New(res.Error)
					}
					fmt.Fprintf(out, "relay %s at %s: FAILED: %s\n", res.Relay, res.Address, res.Error)
					continue
				}
				printPing(out, res)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "ping every relay of this hub's relay or pool")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}

// pingRelay pings one relay; a failure is in the result's Error.
func pingRelay(ctx context.Context, rc *config.Relay) *pingResult {
	fail := func(err error) *pingResult {
		return &pingResult{Relay: rc.Name, Address: rc.Client.Address, TLS: rc.Client.TLS,
			Error: fmt.Sprintf("relay %s at %s: %v", rc.Name, rc.Client.Address, err)}
	}
	tc, err := clientTLS(rc.Client)
	if err != nil {
		return fail(err)
	}
	res, err := ping(ctx, rc.Client.Address, tc)
	if err != nil {
		return fail(err)
	}
	res.Relay = rc.Name
	return res
}

func printPing(out io.Writer, res *pingResult) {
	proto := "tcp"
	if res.TLS {
		proto = "tcps"
	}
	fmt.Fprintf(out, "relay %s at %s (%s): protocol %d, epoch %s\n", res.Relay, res.Address, proto, res.Version, res.Epoch)
	fmt.Fprintf(out, "  connect %.3f ms, handshake %.3f ms, round trip %.3f ms\n", res.ConnectMs, res.HandshakeMs, res.RTTMs)
	fmt.Fprintf(out, "  limits:")
	for _, l := range sortedLimitNames(res.Limits) {
		fmt.Fprintf(out, " %s=%d", l, res.Limits[l])
	}
	fmt.Fprintln(out)
}

func sortedLimitNames(m map[string]uint64) []string {
	names := make([]string, 0, len(m))
	for n := range m { // sorted: below
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ping dials addr, handshakes and times one Ping.
func ping(ctx context.Context, addr string, tc *tls.Config) (*pingResult, error) {
	res := &pingResult{Address: addr, TLS: tc != nil, Limits: map[string]uint64{}}
	t0 := time.Now()
	wp, err := dialWire(ctx, addr, tc)
	if err != nil {
		return nil, err
	}
	defer wp.Close()
	t1 := time.Now()
	w, err := handshake(wp)
	if err != nil {
		return nil, explainWire(err, tc != nil)
	}
	t2 := time.Now()
	res.Version, res.Epoch = w.Version, fmt.Sprintf("%016x", w.Epoch)
	for _, l := range w.Limits {
		res.Limits[l.Key.String()] = l.Value
	}
	if err := roundTrip(wp, uint64(t2.UnixNano())); err != nil {
		return nil, explainWire(err, tc != nil)
	}
	t3 := time.Now()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.ConnectMs, res.HandshakeMs, res.RTTMs = ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(t3.Sub(t2))
	return res, nil
}

// roundTrip sends a Ping and waits for its Pong.
func roundTrip(wp *wirepeer.Peer, data uint64) error {
	if err := wp.Send(&wire.Ping{Data: data}); err != nil {
		return err
	}
	for {
		f, err := wp.NextFrame()
		if err != nil {
			return err
		}
		if p, ok := f.(*wire.Pong); ok && p.Data == data {
			return nil
		}
		if e, ok := f.(*wire.Error); ok && e.Fatal() {
			return fmt.Errorf("relay closed the connection: %s: %s", e.Code, e.Text)
		}
	}
}

// dialWire connects (TLS when tc is set) and bounds the connection by ctx.
func dialWire(ctx context.Context, addr string, tc *tls.Config) (*wirepeer.Peer, error) {
	nc, err := tcp.NetDialer(tc)(ctx, addr)
	if err != nil {
		return nil, explainDial(err, tc != nil)
	}
	wp := wirepeer.New(nc, 0)
	wp.Bound(ctx) // for the connection's life: ping and tests are short
	return wp, nil
}

// handshake sends Hello and returns the relay's Welcome.
func handshake(wp *wirepeer.Peer) (*wire.Welcome, error) {
	w, err := wp.Handshake("cosnim-ping")
	if re := (*wirepeer.RemoteError)(nil); errors.As(err, &re) {
		return nil, fmt.Errorf("relay refused the handshake: %w", err)
	}
	return w, err
}

// explainWire says what a failed exchange with the relay means.
func explainWire(err error, isTLS bool) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the relay closed the connection")
	}
	return explainDial(err, isTLS)
}

// explainDial makes dial and handshake errors say what to do.
func explainDial(err error, isTLS bool) error {
	err = tcp.ExplainDialError(err)
	if errors.Is(err, tcp.ErrProtocolMismatch) {
		return err
	}
	var oe *net.OpError
	if isTLS && errors.As(err, &oe) && oe.Op == "remote error" {
		return fmt.Errorf("the relay refused this client's TLS certificate (%w); check the client section's cert_file and key_file, that the relay's client_ca_file signed them, and that authorized_clients lists them", err)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired && ci.Cert != nil {
		// Not this client's doing: its ca_cert_file and server_name are fine.
		const day = "2006-01-02 15:04 MST"
		subject := ci.Cert.Subject.String()
		if now := time.Now(); now.Before(ci.Cert.NotBefore) {
			return fmt.Errorf("the relay's certificate %q is not valid until %s (it is %s here): the relay serves a certificate too early, or a clock is wrong (%w)",
				subject, ci.Cert.NotBefore.UTC().Format(day), now.UTC().Format(day), err)
		}
		return fmt.Errorf("the relay's certificate %q expired on %s: the relay's ssl_cert_file must be renewed (%w)",
			subject, ci.Cert.NotAfter.UTC().Format(day), err)
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return fmt.Errorf("the relay's certificate did not verify (%w); check the client section's ca_cert_file and server_name", err)
	}
	return err
}

// --- announce ---

// announceResult is the --json output of `relay announce`.
type announceResult struct {
	Hub       string `json:"hub"`
	Announced int    `json:"announced"`
	Acked     int    `json:"acked"`
	Error     string `json:"error,omitempty"`
}

func newAnnounceCmd() *cobra.Command {
	var hub string
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "announce [RELAY_NAME] [--hub HUB] ID...",
		Short: "Announce capsule references and wait for the relay's acks",
		Long: `announce joins the channel of --hub, announces each ID (a capsule
reference) and waits until the relay has acknowledged them all, or
--timeout passes (then it exits non-zero).

With RELAY_NAME it uses that relay alone; without --hub it then uses the
one capsule hub the configuration names for this relay (see
"cosnim relay watch --help"); with none or several, --hub is required.
Without RELAY_NAME (the first ID is not a relay the configuration defines)
it uses the relay or pool the hub's configuration names, as an instance
does: with a pool, the hub's homes in rendezvous order, failing over to the
next relay when one is down, and every ID is acknowledged by a home.
The continuum secret comes from --continuum-key-file or $COSNIM_CONTINUUM_KEY.`,
		Example: `  cosnim relay announce local --hub hub-a capsule-1 capsule-2
  cosnim relay announce --hub hub-a capsule-3   # the hub's relay or pool`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, ids, err := splitRelayArg(cmd, args)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				return errors.New("no ID to announce")
			}
			if name == "" && hub == "" {
				return fmt.Errorf("%q is not a relay of the configuration: give RELAY_NAME first, or --hub HUB to use the hub's relay or pool", args[0])
			}
			var a *agent.Agent
			hubs := []string{hub}
			if name != "" {
				if hubs, err = resolveHubs(cmd, name, hubs, true); err != nil {
					return err
				}
				a, _, err = joinedAgent(cmd, name, hubs)
			} else {
				a, _, err = poolAgent(cmd, hubs)
			}
			if err != nil {
				return err
			}
			hub = hubs[0]
			defer a.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			ctx, stop := signalContext(ctx)
			defer stop()
			res := announceResult{Hub: hub}
			err = announceIDs(ctx, a, hub, ids, &res)
			out := cmd.OutOrStdout()
			if asJSON {
				if err != nil {
					res.Error = err.Error()
				}
				return writeJSON(out, res, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "announced %d entries to hub %s; the relay acknowledged them all\n", res.Announced, hub)
			return nil
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "capsule hub whose channel to announce in (default with RELAY_NAME: the relay's one configured hub)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().String("continuum-key-file", "", "file holding the continuum secret (default $"+EnvContinuumKey+")")
	return cmd
}

func announceIDs(ctx context.Context, a *agent.Agent, hub string, ids []string, res *announceResult) error {
	if err := a.WaitCaughtUp(ctx, hub); err != nil {
		if last := a.LastError(); last != nil {
			return fmt.Errorf("could not reach the relay (state %s): %w; last attempt: %w", a.State(), err, explainDial(last, true))
		}
		return fmt.Errorf("could not reach the relay (state %s): %w", a.State(), err)
	}
	for _, id := range ids {
		res.Announced++
		if err := a.AnnounceAndWait(ctx, hub, []byte(id)); err != nil {
			return fmt.Errorf("no ack for %q (state %s): %w", id, a.State(), err)
		}
		res.Acked++
	}
	return nil
}
