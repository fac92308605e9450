package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/cmd/cosnim/internal/config"
	"github.com/cosnim/relays/internal/secret"
	"github.com/cosnim/relays/roster"
)

// hubRef is the relay or pool that hubs use; every hub must use the same
// one, since one Agent serves them.
func hubRef(f *config.File, hubs []string) (config.RelayRef, error) {
	if len(hubs) == 0 {
		return config.RelayRef{}, errors.New("name a relay or give --hub HUB (its configured relay or pool is used)")
	}
	ref := f.HubRelay(hubs[0])
	if ref.IsZero() {
		return ref, fmt.Errorf("hub %s uses no relay in %s (capsule_hubs: %s: relay: NAME, or continuum: relay: NAME)", hubs[0], f.Name(), hubs[0])
	}
	for _, h := range hubs[1:] {
		if other := f.HubRelay(h); !slices.Equal(other.Pool, ref.Pool) {
			return ref, fmt.Errorf("hubs %s and %s use different relays (%s, %s): run one command per relay or pool", hubs[0], h, ref, other)
		}
	}
	return ref, nil
}

// relayTargets resolves the relays a command shows: those named, or with
// none, the relay or pool of each --hub, in configuration order.
func relayTargets(cmd *cobra.Command, names, hubs []string) (*config.File, []*config.Relay, error) {
	f, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	if len(names) == 0 {
		var hs []string
		for _, h := range hubs {
			if h != "" {
				hs = append(hs, h)
			}
		}
		if len(hs) == 0 {
			return nil, nil, usageError(fmt.Errorf("%s: name one or more relays, or give --hub HUB for its relay or pool (see %s --help)", cmd.CommandPath(), cmd.CommandPath()))
		}
		for _, h := range hs {
			for _, n := range f.HubRelay(h).Pool {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		if len(names) == 0 {
			_, err := hubRef(f, hs)
			return nil, nil, err
		}
	}
	var out []*config.Relay
	for _, n := range names {
		rc, err := f.Relay(n)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, rc)
	}
	return f, out, nil
}

// splitRelayArg tells a leading RELAY_NAME from the IDs after it: the
// first argument is a relay when the configuration defines one of that
// name, else every argument is an ID and --hub says where they go.
func splitRelayArg(cmd *cobra.Command, args []string) (name string, rest []string, err error) {
	f, err := loadConfig(cmd)
	if err != nil {
		return "", nil, err
	}
	if len(args) > 0 && slices.Contains(f.RelayNames(), args[0]) {
		return args[0], args[1:], nil
	}
	return "", args, nil
}

// poolAgent starts an Agent on the relay or pool hubs use, the way an
// instance does (failover included), and joins them.
// where names it for errors.
func poolAgent(cmd *cobra.Command, hubs []string) (a *agent.Agent, where string, log *slog.Logger, err error) {
	f, err := loadConfig(cmd)
	if err != nil {
		return nil, "", nil, err
	}
	ref, err := hubRef(f, hubs)
	if err != nil {
		return nil, "", nil, err
	}
	if len(ref.Pool) == 1 {
		return joinedAgent(cmd, ref.Pool[0], hubs)
	}
	log, err = newLogger(cmd)
	if err != nil {
		return nil, "", nil, err
	}
	log = log.With("pool", ref.String())
	pass, err := continuumSecret(cmd)
	if err != nil {
		return nil, "", nil, err
	}
	opts := agent.Options{Secret: pass, Agent: "cosnim-cli", Logger: log,
		Homes: ref.HomesOrDefault(), Hysteresis: ref.HysteresisOrDefault()}
	for i, name := range ref.Pool {
		rc, err := f.Relay(name)
		if err != nil {
			return nil, "", nil, err
		}
		tc, err := clientTLS(rc.Client)
		if err != nil {
			return nil, "", nil, fmt.Errorf("relay %s: %w", name, err)
		}
		if i == 0 { // one client section's timings for the whole Agent
			opts.ConnectTimeout, opts.BackoffMin, opts.BackoffMax = rc.Client.ConnectTimeout, rc.Client.BackoffMin, rc.Client.BackoffMax
		}
		opts.Pool = append(opts.Pool, agent.Relay{Name: name, Addrs: []string{rc.Client.Address}, TLS: tc})
	}
	a, err = agent.New(opts)
	a, log, err = joinHubs(a, log, hubs, err)
	return a, "pool " + ref.String(), log, err
}

// homesRelay is one relay of `relay homes`, in the hub's rendezvous order.
type homesRelay struct {
	Rank           int    `json:"rank"`
	Name           string `json:"name"`
	Address        string `json:"address"`
	Home           bool   `json:"home"`
	Joined         bool   `json:"joined"`
	State          string `json:"state"`
	ConnectedSince string `json:"connected_since,omitempty"`
}

// homesResult is `relay homes` output.
type homesResult struct {
	Hub     string       `json:"hub"`
	Channel string       `json:"channel"`
	Homes   int          `json:"homes"`
	Relays  []homesRelay `json:"relays"`
	Error   string       `json:"error,omitempty"`
}

func newHomesCmd() *cobra.Command {
	var hub string
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "homes --hub HUB",
		Short: "Show a hub's relays in rendezvous order and which are its homes now",
		Long: `homes derives the hub's channel from the continuum secret, orders the
relays its configuration names (capsule_hubs.HUB.relay, else
continuum.relay) by rendezvous hashing, as every instance does, then
connects through the pool as an instance would and shows which relays are
the hub's homes now and which have confirmed the join. It waits up to
--timeout for the hub to be caught up on its homes; it exits 1 when no home
could be joined. The continuum secret comes from --continuum-key-file or
$COSNIM_CONTINUUM_KEY.`,
		Example: `  cosnim relay homes --hub hub-a
  cosnim relay homes --hub hub-a --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hub == "" {
				return errors.New("--hub is required: the hub whose homes to show")
			}
			res, err := homes(cmd, hub, timeout)
			if asJSON {
				if err != nil {
					res.Error = err.Error()
				}
				return writeJSON(cmd.OutOrStdout(), res, err)
			}
			printHomes(cmd, res)
			return err
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "capsule hub whose homes to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the hub's homes")
	cmd.Flags().String("continuum-key-file", "", "file holding the continuum secret (default $"+EnvContinuumKey+")")
	return cmd
}

func homes(cmd *cobra.Command, hub string, timeout time.Duration) (*homesResult, error) {
	res := &homesResult{Hub: hub}
	f, err := loadConfig(cmd)
	if err != nil {
		return res, err
	}
	ref, err := hubRef(f, []string{hub})
	if err != nil {
		return res, err
	}
	pass, err := continuumSecret(cmd)
	if err != nil {
		return res, err
	}
	stretched, err := secret.Stretch(pass)
	if err != nil {
		return res, err
	}
	keys, err := roster.DeriveKeys(stretched, hub)
	if err != nil {
		return res, err
	}
	id := keys.ID()
	res.Channel, res.Homes = fmt.Sprintf("%x", id[:4]), min(ref.HomesOrDefault(), len(ref.Pool))
	for rank, i := range client.RendezvousOrder(id, ref.Pool) {
		rc, err := f.Relay(ref.Pool[i])
		if err != nil {
			return res, err
		}
		res.Relays = append(res.Relays, homesRelay{Rank: rank + 1, Name: rc.Name, Address: rc.Client.URL, State: client.Stopped.String()})
	}
	a, _, _, err := poolAgent(cmd, []string{hub})
	if err != nil {
		return res, err
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	waitErr := a.WaitCaughtUp(ctx, hub)
	fillHomes(res, a, id)
	if waitErr != nil {
		return res, fmt.Errorf("hub %s not caught up on any home within %v: %w", hub, timeout, explainLast(a, waitErr))
	}
	return res, nil
}

// fillHomes marks res's relays with what the Agent reports.
func fillHomes(res *homesResult, a *agent.Agent, id roster.ChannelID) {
	st := map[string]client.RelayStatus{}
	for _, r := range a.Relays() {
		st[r.Name] = r
	}
	var ch client.ChannelStatus
	for _, c := range a.Channels() {
		if c.ID == id {
			ch = c
		}
	}
	for i := range res.Relays {
		r := &res.Relays[i]
		s, ok := st[r.Name]
		if !ok { // one relay: no pool statuses; the Agent's own state
			r.Home, r.State = true, a.State().String()
			r.Joined = a.State() == client.Connected
			continue
		}
		r.Home, r.Joined, r.State = slices.Contains(ch.Homes, r.Name), slices.Contains(ch.Joined, r.Name), s.State.String()
		if !s.ConnectedSince.IsZero() {
			r.ConnectedSince = s.ConnectedSince.Format(time.RFC3339)
		}
	}
}

// explainLast adds the Agent's last connection error to err.
func explainLast(a *agent.Agent, err error) error {
	if last := a.LastError(); last != nil {
		return fmt.Errorf("%w; last attempt: %w", err, explainDial(last, true))
	}
	return err
}

func printHomes(cmd *cobra.Command, res *homesResult) {
	out := cmd.OutOrStdout()
	if res.Channel == "" {
		return
	}
	fmt.Fprintf(out, "hub %s  channel %s…  homes %d of %d relays, in rendezvous order:\n", res.Hub, res.Channel, res.Homes, len(res.Relays))
	for _, r := range res.Relays {
		var role []string
		switch {
		case r.Home && r.Joined:
			role = append(role, "home, joined")
		case r.Home:
			role = append(role, "home, not joined")
		default:
			role = append(role, "standby")
		}
		role = append(role, strings.ToLower(r.State))
		if r.ConnectedSince != "" {
			role = append(role, "since "+r.ConnectedSince)
		}
		fmt.Fprintf(out, "  %d. %-16s %-28s %s\n", r.Rank, r.Name, r.Address, strings.Join(role, ", "))
	}
}

// writeJSONList prints one result as an object and several as an array.
func writeJSONList[T any](cmd *cobra.Command, res []T, err error) error {
	if len(res) == 1 {
		return writeJSON(cmd.OutOrStdout(), res[0], err)
	}
	return writeJSON(cmd.OutOrStdout(), res, err)
}
