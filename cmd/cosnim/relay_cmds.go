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
	"github.com/cosnim/relays/cmd/cosnim/internal/config"
	"github.com/cosnim/relays/internal/files"
	isecret "github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// EnvContinuumKey holds the continuum secret when --continuum-key-file is
// not given.
const EnvContinuumKey = "COSNIM_CONTINUUM_KEY"

// cliAgent names the CLI in Hello. Its length, 10, makes the Hello's
// agent length byte a '\n', so that an HTTP server dialed by mistake
// answers the Hello at once (a 400 to a malformed request line) rather
// than after its header timeout, and the mistake is named quickly.
const cliAgent = "cosnim-cli"

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
// not part of it. A file that others can read is warned about on stderr,
// and a weak secret (see secret.Strength) too, or refused with --strict.
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
	if bits, why := isecret.Strength(secret); why != "" {
		msg := fmt.Sprintf("the continuum secret is weak: about %.0f bits, under %d, because %s; anyone who sees a channel ID can test guesses offline. Make one with `cosnim secret new`", bits, isecret.MinBits, why)
		if strict, _ := cmd.Flags().GetBool("strict"); strict {
			return nil, fmt.Errorf("%s (--strict refuses it)", msg)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "cosnim: warning: %s\n", msg)
	}
	return secret, nil
}

// addSecretFlags adds the flags of a command that takes the continuum
// secret.
func addSecretFlags(cmd *cobra.Command) {
	cmd.Flags().String("continuum-key-file", "", "file holding the continuum secret (default $"+EnvContinuumKey+"); make one with `cosnim secret new`")
	cmd.Flags().Bool("strict", false, "refuse a weak continuum secret instead of warning")
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
		Agent:          cliAgent,
		ConnectTimeout: rc.Client.ConnectTimeout,
		BackoffMin:     rc.Client.BackoffMin,
		BackoffMax:     rc.Client.BackoffMax,
		Logger:         log,
	})
}

// joinedAgent starts an Agent on the client section of the relay named
// name and joins hubs.
func joinedAgent(cmd *cobra.Command, name string, hubs []string) (a *agent.Agent, where string, log *slog.Logger, err error) {
	rc, log, err := relayFromArgs(cmd, name)
	if err != nil {
		return nil, "", nil, err
	}
	a, err = newRelayAgent(cmd, rc, log)
	a, log, err = joinHubs(a, log, hubs, err)
	return a, fmt.Sprintf("relay %s at %s", rc.Name, rc.Client.Address), log, err
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
// result, then exits with err's code without repeating the error.
func writeJSON(out io.Writer, res any, err error) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(res); encErr != nil {
		return encErr
	}
	if err != nil {
		return &exitError{code: exitCodeOf(err), reported: true, err: err}
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
	err         error             // Error, typed (exit codes)
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
authorization failure, a TLS port dialed with tcp://, an HTTP port (a
relay's operations port) or anything else that is not a relay is named in
one line, from the first bytes it sends; the command exits non-zero when
any relay failed (3 when the failure is permanent). --json prints one
object, or an array for several.`,
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
			var errs []error
			for _, r := range results {
				if r.err != nil {
					failed = append(failed, r.Relay)
					errs = append(errs, r.err)
				}
			}
			err = nil
			if len(failed) > 0 {
				err = fmt.Errorf("%d of %d relays failed (%s): %w", len(failed), len(relays), strings.Join(failed, ", "), errors.Join(errs...))
			}
			if asJSON {
				return writeJSONList(cmd, results, err)
			}
			out := cmd.OutOrStdout()
			for _, res := range results {
				if res.Error != "" {
					if len(results) == 1 {
						return res.err
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
		err = fmt.Errorf("relay %s at %s: %w", rc.Name, rc.Client.Address, err)
		return &pingResult{Relay: rc.Name, Address: rc.Client.Address, TLS: rc.Client.TLS, Error: err.Error(), err: err}
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
	w, err := wp.Handshake(cliAgent)
	if re := (*wirepeer.RemoteError)(nil); errors.As(err, &re) {
		if agent.RefusalCode(re.Frame.Code) {
			err = &agent.RefusedError{Code: re.Frame.Code, Text: re.Frame.Text}
		}
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

// explainForeign says in one line what a peer that is not a relay is
// (see wire.SniffFirst); other errors are returned unchanged.
func explainForeign(err error) error {
	var fe *wire.ForeignError
	if !errors.As(err, &fe) {
		return err
	}
	var msg string
	switch fe.Kind {
	case wire.ForeignTLSRequired, wire.ForeignTLS:
		msg = "this port expects TLS: the relay's client url must be tcps://HOST:PORT (with ca_cert_file)"
	case wire.ForeignHTTP:
		msg = "this is an HTTP server (a relay's operations port, its metrics_url?), not a relay's client port; it answered " + fe.Line
	default:
		msg = "this is not a relay: it does not speak the relay protocol"
		if fe.Line != "" {
			msg += "; it said " + fe.Line
		}
	}
	return &explained{msg: msg, err: err}
}

// explainDial makes dial and handshake errors say what to do.
func explainDial(err error, isTLS bool) error {
	if fe := (*wire.ForeignError)(nil); errors.As(err, &fe) {
		return explainForeign(err)
	}
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

// runAnnounce is announce's RunE: it joins hub's channel, on RELAY_NAME
// or the hub's relay or pool, and announces the IDs of args.
func runAnnounce(cmd *cobra.Command, args []string, hub string, timeout time.Duration, asJSON bool) error {
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
	var where string
	hubs := []string{hub}
	if name != "" {
		if hubs, err = resolveHubs(cmd, name, hubs, true); err != nil {
			return err
		}
		a, where, _, err = joinedAgent(cmd, name, hubs)
	} else {
		a, where, _, err = poolAgent(cmd, hubs)
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
	if err = announceIDs(ctx, a, hub, ids, &res); err != nil {
		err = fmt.Errorf("%s: %w", where, err)
	}
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
}

func newAnnounceCmd() *cobra.Command {
	var hub string
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "announce [RELAY_NAME] [--hub HUB] ID...",
		Short: "Announce capsule references and wait for the relay's acks",
		Long: `announce joins the channel of --hub, announces each ID (a capsule
reference), in as few frames as the relay's frame limit allows, and waits
once until the relay has acknowledged them all, or --timeout passes (then
it exits 4). While the relay cannot be reached it retries, saying why
once; when it cannot be used as configured (a TLS port dialed with
tcp://, a refused certificate, not a relay) it ends at once with the
reason and exits 3.

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
			return runAnnounce(cmd, args, hub, timeout, asJSON)
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "capsule hub whose channel to announce in (default with RELAY_NAME: the relay's one configured hub)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	addSecretFlags(cmd)
	return cmd
}

// announceIDs announces ids in as few frames as the relay takes and waits
// once for all the acks.
func announceIDs(ctx context.Context, a *agent.Agent, hub string, ids []string, res *announceResult) error {
	if err := a.WaitCaughtUp(ctx, hub); err != nil {
		return unreachable(a, err)
	}
	refs := make([][]byte, len(ids))
	for i, id := range ids {
		refs[i] = []byte(id)
	}
	res.Announced = len(ids)
	acked, err := a.AnnounceAllAndWait(ctx, hub, refs)
	res.Acked = acked
	if err != nil {
		if errors.Is(err, agent.ErrPermanent) {
			return unreachable(a, err)
		}
		return fmt.Errorf("the relay acknowledged %d of %d entries (state %s): %w", acked, len(ids), a.State(), err)
	}
	return nil
}

// unreachable says why an Agent's wait for the relay failed: at once for
// a permanent failure (its reason, explained), or after the wait's
// deadline (with the last attempt's reason).
func unreachable(a *agent.Agent, err error) error {
	if errors.Is(err, agent.ErrPermanent) {
		return explainDial(err, true)
	}
	if last := a.LastError(); last != nil {
		return fmt.Errorf("could not reach the relay (state %s): %w; last attempt: %w", a.State(), err, explainDial(last, true))
	}
	return fmt.Errorf("could not reach the relay (state %s): %w", a.State(), err)
}
