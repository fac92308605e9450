package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/bench"
	"github.com/cosnim/relays/relay/relayserver"
)

// topView is one refresh of `relay top`, and its --json line.
type topView struct {
	Relay string    `json:"relay"`
	URL   string    `json:"url"`
	Time  time.Time `json:"time"`
	// Rates are per second over the interval since the previous refresh
	// (the relay's own, since start or its last /status, for the first).
	EntriesInRate float64            `json:"entries_in_per_second"`
	DeliveredRate float64            `json:"entries_delivered_per_second"`
	BytesInRate   float64            `json:"bytes_in_per_second"`
	BytesOutRate  float64            `json:"bytes_out_per_second"`
	MergedRate    float64            `json:"pending_merged_per_second"`
	Status        relayserver.Status `json:"status"`
}

func newTopCmd() *cobra.Command {
	var once, asJSON bool
	var interval time.Duration
	var hub string
	cmd := &cobra.Command{
		Use:   "top RELAY_NAME... | top --hub HUB",
		Short: "A live view of a running relay, from its operations endpoint",
		Long: `top reads /status from the relay's operations listener (metrics_url in
its server section) and shows, refreshed every --interval: uptime, epoch,
connections and channels, entries in and delivered per second, send-queue
and memory-budget use, slow members (entries merged for them, entries
dropped and resyncs), and the channels with the most cached bytes (named by
a 4-byte prefix of their opaque ID).

On a terminal the view is redrawn in place; press q (or Ctrl-C) to quit.
Elsewhere each refresh is printed in turn. --once prints one view and
exits; --json prints each view as one JSON object per line.

With several relays (named, or --hub HUB for the hub's relay or pool) each
refresh shows every relay in turn; one that cannot be read says why and
the others are still shown.`,
		Example: `  cosnim relay top main
  cosnim relay top main --once --json | jq .status.connections
  cosnim relay top --hub hub-a --once`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, relays, err := relayTargets(cmd, args, []string{hub})
			if err != nil {
				return err
			}
			if interval <= 0 {
				return errors.New("--interval must be greater than 0")
			}
			t := &topper{}
			for _, rc := range relays {
				if rc.Server.MetricsURL == "" {
					return fmt.Errorf("relay %s has no metrics_url in its server section (%s): top reads its /status there", rc.Name, f.Name())
				}
				t.relays = append(t.relays, &topRelay{name: rc.Name, url: strings.TrimSuffix(rc.Server.MetricsURL, "/")})
			}
			t.client = &http.Client{Timeout: 5 * time.Second}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			out := cmd.OutOrStdout()
			switch {
			case once:
				views, errs := t.fetchAll(ctx)
				for i, v := range views {
					if errs[i] != nil {
						if len(views) == 1 {
							return errs[i]
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "cosnim: %v\n", errs[i])
						continue
					}
					if i > 0 && !asJSON {
						fmt.Fprintln(out)
					}
					if err := t.show(out, v, asJSON); err != nil {
						return err
					}
				}
				return errors.Join(errs...)
			case asJSON || !isTerminal(out):
				return t.stream(ctx, out, cmd.ErrOrStderr(), interval, asJSON)
			}
			return t.live(ctx, cmd.InOrStdin(), out, interval)
		},
	}
	cmd.Flags().StringVar(&hub, "hub", "", "show every relay of this hub's relay or pool")
	cmd.Flags().BoolVar(&once, "once", false, "print one view and exit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each view as a JSON object (one per line)")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between refreshes")
	return cmd
}

// topper fetches and shows relays' status.
type topper struct {
	relays []*topRelay
	client *http.Client
}

// topRelay is one relay top shows.
type topRelay struct {
	name, url string
	prev      *topView
}

// fetchAll fetches every relay's view; errs[i] is set where views[i] is nil.
func (t *topper) fetchAll(ctx context.Context) (views []*topView, errs []error) {
	views, errs = make([]*topView, len(t.relays)), make([]error, len(t.relays))
	for i, r := range t.relays {
		views[i], errs[i] = t.fetch(ctx, r)
	}
	return views, errs
}

// fetch reads r's /status and works out the rates since the previous fetch.
func (t *topper) fetch(ctx context.Context, r *topRelay) (*topView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("relay %s operations endpoint: %w", r.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("relay %s: %s/status: %s: %s", r.name, r.url, resp.Status, strings.TrimSpace(string(body)))
	}
	v := &topView{Relay: r.name, URL: r.url, Time: time.Now()}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v.Status); err != nil {
		return nil, fmt.Errorf("relay %s: %s/status: %w", r.name, r.url, err)
	}
	st := &v.Status
	v.EntriesInRate, v.DeliveredRate = st.EntriesInRate, st.DeliveredRate
	v.BytesInRate, v.BytesOutRate = st.BytesInRate, st.BytesOutRate
	if p := r.prev; p != nil && p.Status.Epoch == st.Epoch {
		if secs := v.Time.Sub(p.Time).Seconds(); secs > 0 {
			rate := func(now, before uint64) float64 {
				if now < before {
					return 0
				}
				return float64(now-before) / secs
			}
			v.EntriesInRate = rate(st.EntriesIn, p.Status.EntriesIn)
			v.DeliveredRate = rate(st.Delivered, p.Status.Delivered)
			v.BytesInRate = rate(st.BytesIn, p.Status.BytesIn)
			v.BytesOutRate = rate(st.BytesOut, p.Status.BytesOut)
			v.MergedRate = rate(st.PendingMerged, p.Status.PendingMerged)
		}
	}
	r.prev = v
	return v, nil
}

func (t *topper) show(w io.Writer, v *topView, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(v)
	}
	_, err := io.WriteString(w, renderTop(v))
	return err
}

// stream prints a view every interval until ctx ends: for pipes and --json.
func (t *topper) stream(ctx context.Context, w, errw io.Writer, interval time.Duration, asJSON bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		views, errs := t.fetchAll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for i, v := range views {
			if errs[i] != nil {
				fmt.Fprintf(errw, "cosnim: %v\n", errs[i])
				continue
			}
			if err := t.show(w, v, asJSON); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintln(w)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// live redraws the view in place on a terminal until q, Ctrl-C or ctx.
func (t *topper) live(ctx context.Context, in io.Reader, out io.Writer, interval time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		if restore, err := keysMode(f); err == nil {
			defer restore()
		}
	}
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := in.Read(b); err != nil {
				return // stdin closed: quit on Ctrl-C only
			}
			if b[0] == 'q' || b[0] == 'Q' || b[0] == 3 {
				cancel()
				return
			}
		}
	}()
	const hideCursor, showCursor, home, clearDown = "\x1b[?25l", "\x1b[?25h", "\x1b[H", "\x1b[J"
	fmt.Fprint(out, hideCursor+"\x1b[2J")
	defer fmt.Fprint(out, showCursor)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ctx.Err() == nil {
		views, errs := t.fetchAll(ctx)
		if ctx.Err() != nil {
			break
		}
		var screen strings.Builder
		for i, v := range views {
			if i > 0 {
				screen.WriteString("\n")
			}
			if errs[i] != nil {
				fmt.Fprintf(&screen, "cosnim relay top %s: %v\n(retrying every %v)\n", t.relays[i].name, errs[i], interval)
			} else {
				screen.WriteString(renderTop(v))
			}
		}
		screen.WriteString("\n(q to quit)\n")
		// Lines end in \r\n: the terminal may not map \n itself.
		fmt.Fprint(out, home+strings.ReplaceAll(screen.String(), "\n", "\x1b[K\r\n")+clearDown)
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	fmt.Fprint(out, home+"\x1b[2J")
	return nil
}

// renderTop lays out one view as text.
func renderTop(v *topView) string {
	st := &v.Status
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	state := "serving"
	if st.Draining {
		state = "DRAINING"
	}
	tls := "tcp"
	if st.TLS {
		tls = "tcps"
	}
	p("cosnim relay top %s  %s  %s\n\n", v.Relay, v.URL, v.Time.Format("15:04:05"))
	p("%-14s %s   epoch %s   %s on %s (%s)   version %s\n", "uptime", st.Uptime, st.Epoch, state, st.Listen, tls, st.Version.Version)
	p("%-14s %d live, %d accepted   channels %d\n", "connections", st.Connections, st.Accepted, st.Channels)
	p("%-14s %10.1f/s   total %d\n", "entries in", v.EntriesInRate, st.EntriesIn)
	p("%-14s %10.1f/s   total %d\n", "delivered", v.DeliveredRate, st.Delivered)
	p("%-14s %10s/s in   %s/s out\n", "bytes", sizeOf(int64(v.BytesInRate)), sizeOf(int64(v.BytesOutRate)))
	m := st.Memory
	p("%-14s %s of %s budget (%s)   rss %s\n", "memory", sizeOf(m.Total), sizeOf(m.Budget), percent(m.Total, m.Budget), sizeOf(m.RSS))
	p("%-14s caches %s  pending %s  queues %s  buffers %s  channels %s  conns %s\n", "", sizeOf(m.Caches),
		sizeOf(m.Pending), sizeOf(m.Queues), sizeOf(m.Buffers), sizeOf(m.Channels), sizeOf(m.Conns))
	queueCap := st.SendQueue * int64(st.Connections)
	p("%-14s %s queued of %s (%d × %s)   closed full %d   syncs deferred %d\n", "send queues",
		sizeOf(m.Queues), sizeOf(queueCap), st.Connections, sizeOf(st.SendQueue), st.QueueFull, st.SyncsDeferred)
	p("%-14s merged %d (%.1f/s)   dropped %d   resyncs %d\n", "slow members", st.PendingMerged, v.MergedRate, st.PendingDropped, st.Resyncs)
	if bb := st.Backbone; bb != nil {
		link := "DOWN"
		if bb.Connected {
			link = "connected to " + bb.URL
		} else if bb.LastError != "" {
			link += " (" + bb.LastError + ")"
		}
		p("%-14s %s   entries out %d  in %d  dropped %d   reconciliations %d (failed %d)\n", "backbone", link,
			bb.EntriesPublished, bb.EntriesLearnt, bb.EntriesDropped, bb.Reconciliations, bb.ReconcilesFailed)
	}
	p("\ntop channels by cached bytes\n")
	p("  %-10s %12s %10s %8s\n", "CHANNEL", "BYTES", "ENTRIES", "MEMBERS")
	for _, c := range st.TopChannels {
		p("  %-10s %12s %10d %8d\n", c.ID, sizeOf(c.Bytes), c.Entries, c.Members)
	}
	if len(st.TopChannels) == 0 {
		p("  (none)\n")
	}
	return b.String()
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// sizeOf prints bytes in binary units.
func sizeOf(n int64) string { return bench.HumanBytes(float64(n)) }
