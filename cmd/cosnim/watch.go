package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/client/agent"
)

// watchSweep is how often watch compares the Agent's overflow counter with
// what it has read from the roster.
const watchSweep = 200 * time.Millisecond

// watchLine is one line of `relay watch` output.
type watchLine struct {
	Hub    string `json:"hub"`
	Ref    string `json:"ref,omitempty"`
	RefHex string `json:"ref_hex,omitempty"`
	Time   string `json:"time"`
}

func newWatchCmd() *cobra.Command {
	var hubs []string
	var count int
	cmd := &cobra.Command{
		Use:   "watch [RELAY_NAME] [--hub HUB]...",
		Short: "Print the entries a relay carries, as JSON lines",
		Long: `watch joins the channel of each --hub through the relay and prints every
capsule reference it learns, first those the relay already holds, then new
ones as they are announced, one JSON object per line:
{"hub":"...","ref":"...","time":"RFC 3339"} ("ref_hex" for references that
are not UTF-8). Each reference is printed once. It runs until interrupted,
or until --count distinct entries are printed.

Without --hub it watches every capsule hub the configuration names for
this relay (capsule_hubs whose relay is RELAY_NAME, or that name no relay
while the continuum's relay is RELAY_NAME); with none, --hub is required.
Without RELAY_NAME it watches each --hub through the relay or pool its
configuration names, as an instance does (a pool's homes, with failover);
the hubs must then share one relay or pool.

Nothing is missed when entries come faster than they can be printed: what
the Agent's feed could not hold is read from its roster, and stderr says so.
While the relay cannot be reached watch keeps trying, saying why once;
when it cannot be used as configured (see "cosnim --help", exit code 3)
it ends at once with the reason.
The continuum secret comes from --continuum-key-file or $COSNIM_CONTINUUM_KEY.`,
		Example: `  cosnim relay watch local --hub hub-a
  cosnim relay watch --hub hub-a --count 100   # the hub's relay or pool`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a *agent.Agent
			var log *slog.Logger
			var where string
			var err error
			if len(args) == 1 {
				if hubs, err = resolveHubs(cmd, args[0], hubs, false); err != nil {
					return err
				}
				a, where, log, err = joinedAgent(cmd, args[0], hubs)
			} else {
				hubs = slices.DeleteFunc(hubs, func(h string) bool { return h == "" })
				a, where, log, err = poolAgent(cmd, hubs)
			}
			if err != nil {
				return err
			}
			defer a.Close()
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			go reportProgress(ctx, a, hubs, log)
			w := &watcher{a: a, hubs: hubs, count: count, log: log,
				enc: json.NewEncoder(cmd.OutOrStdout()), seen: map[string]bool{}}
			if err := w.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&hubs, "hub", nil, "capsule hub whose channel to watch (repeatable; default: every hub configured for the relay)")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many distinct entries (0: run until interrupted)")
	addSecretFlags(cmd)
	return cmd
}

// watcher prints each entry once, from the Agent's feed and, when the feed
// overflowed, from its roster (the truth; the feed is lossy).
type watcher struct {
	a     *agent.Agent
	hubs  []string
	count int
	log   *slog.Logger
	enc   *json.Encoder

	seen     map[string]bool // hub + "\x00" + ref
	overflow uint64          // Agent.Overflow when the roster was last read
}

// errWatchDone ends run once --count entries are printed.
var errWatchDone = errors.New("watch: count reached")

func (w *watcher) run(ctx context.Context) error {
	tick := time.NewTicker(watchSweep)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-w.a.Entries():
			if !ok {
				return nil
			}
			err = w.print(l.Hub, l.Ref, l.Time)
		case <-tick.C:
			if perr := w.a.Permanent(); perr != nil {
				return explainDial(perr, true)
			}
			err = w.sweep()
		}
		if err == errWatchDone {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// sweep prints what the roster holds and the feed dropped, once the
// Agent's overflow counter has moved.
func (w *watcher) sweep() error {
	ov := w.a.Overflow()
	if ov == w.overflow {
		return nil
	}
	w.log.Info("entries came faster than they were printed; reading the rest from the roster", "overflowed", ov-w.overflow)
	w.overflow = ov
	now := time.Now()
	for _, h := range w.hubs {
		refs, err := w.a.Known(h)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if err := w.print(h, ref, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// print writes one line unless the entry was printed before.
func (w *watcher) print(hub string, ref []byte, at time.Time) error {
	key := hub + "\x00" + string(ref)
	if w.seen[key] {
		return nil
	}
	w.seen[key] = true
	line := watchLine{Hub: hub, Time: at.UTC().Format(time.RFC3339Nano)}
	if utf8.Valid(ref) {
		line.Ref = string(ref)
	} else {
		line.RefHex = hex.EncodeToString(ref)
	}
	if err := w.enc.Encode(line); err != nil {
		return err
	}
	if w.count > 0 && len(w.seen) >= w.count {
		return errWatchDone
	}
	return nil
}

// reportProgress logs link changes and catch-ups until ctx ends.
func reportProgress(ctx context.Context, a *agent.Agent, hubs []string, log *slog.Logger) {
	for ctx.Err() == nil {
		if err := a.WaitConnected(ctx); err != nil {
			return
		}
		for _, h := range hubs {
			if err := a.WaitCaughtUp(ctx, h); err != nil {
				break
			}
			log.Info("caught up", "hub", h)
		}
		// Wait for the link to drop before reporting the next catch-up.
		for ctx.Err() == nil && a.State() == client.Connected {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if ctx.Err() == nil {
			log.Info("relay link lost; reconnecting", "state", a.State().String())
		}
	}
}
