package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/cmd/cosnim/internal/bench"
	"github.com/cosnim/relays/transport/tcp"
)

// benchFlags are the flags of `cosnim relay bench` beyond bench.Options.
type benchFlags struct {
	opts      bench.Options
	inProcess bool
	spawn     bool
	pid       int
	json      bool
	serve     bool
	nats      string
	natsCA    string
	profile   string
}

func newBenchCmd() *cobra.Command {
	var bf benchFlags
	cmd := &cobra.Command{
		Use:   "bench [RELAY_NAME]",
		Short: "Measure a relay: throughput, latency, memory per connection, reconnect storms",
		Long: `bench is a load generator in the spirit of nats bench. Its clients speak
the wire protocol over real TCP or TLS connections.

The relay measured is either RELAY_NAME from the configuration (its client
section; give --pid to read the relay's CPU and RSS from /proc), or one the
bench starts on 127.0.0.1 with the default limits except per-connection
frame and byte rates and the connection limit, which are lifted:
  --in-process  inside this process (CPU and memory are then the process's,
                bench clients included; every connection costs two fds here)
  --spawn       in a child process of this binary, so CPU, RSS and heap are
                the relay's alone (use this for thousands of connections)

Scenarios:
  fanout    --pub publishers, --sub subscribers on one channel, --msgs
            entries per publisher in Announce frames of --batch
  channels  --channels channels × --sub clients, all announcing --rate
            entries per second in all (0: as fast as they can) for --duration
  storm     --idle clients over --channels hold --msgs entries each; the
            relay restarts (memory lost) and all reconnect within --jitter
            and sync: reports the time until the last has caught up
  idle      --idle joined, silent connections: relay memory per connection,
            read --settle after the joins (by then idle connections have
            parked: no reader goroutine, no read buffer), and RSS again
            --scavenge-wait after that reading's GC (what is left once the
            runtime returns the join storm's memory); --heartbeats keeps
            them joined for a --settle of minutes

--nats URL runs fanout or channels against a NATS server instead, through
nats.go with the same pacing and latency histograms (the yardstick of
scripts/nats-compare.sh); --pid then names the nats-server process.

Latency is publish to receive, from a timestamp sealed in each entry.

Senders keep within the frame and byte rates the relay advertises in its
Welcome (it closes a connection past them), unless --ignore-limits. A run
that did not deliver what it was asked says so on its first line
(INCOMPLETE: ...), names the relay limit to raise when one was in the way,
and exits 4.`,
		Example: `  cosnim relay bench --spawn --pub 1 --sub 10 --msgs 1000000 --size 128
  cosnim relay bench --spawn --tls --scenario storm --idle 10000
  cosnim relay bench --spawn --scenario idle --idle 10000 --json
  cosnim relay bench local --pid $(pgrep -n cosnim) --sub 100 --msgs 100000`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if bf.serve {
				return bench.Serve(cmd.InOrStdin(), cmd.OutOrStdout(), bf.opts.TLS, bf.opts.AcceptRate)
			}
			return runBench(cmd, args, &bf)
		},
	}
	bf.register(cmd.Flags())
	return cmd
}

// register defines bench's flags on f, into bf.
func (bf *benchFlags) register(f *pflag.FlagSet) {
	o := &bf.opts
	f.StringVar(&o.Scenario, "scenario", bench.ScenarioFanout, "fanout, channels, storm or idle")
	f.IntVar(&o.Pub, "pub", 1, "publishers (fanout)")
	f.IntVar(&o.Sub, "sub", 10, "subscribers (fanout) or clients per channel (channels)")
	f.IntVar(&o.Msgs, "msgs", 0, "entries per publisher (fanout, default 1000000) or per client (storm, default 4)")
	f.IntVar(&o.Size, "size", 128, "sealed bytes per entry")
	f.IntVar(&o.Batch, "batch", 64, "entries per Announce frame")
	f.IntVar(&o.Channels, "channels", 0, "channels (default: 1 for fanout, 1000 for channels, idle/10 for storm and idle)")
	f.IntVar(&o.Rate, "rate", 0, "announced entries per second in all (channels); 0 for as fast as possible")
	f.DurationVar(&o.Duration, "duration", 0, "length of a channels run (default 10s)")
	f.IntVar(&o.Idle, "idle", 0, "connections (storm and idle, default 1000)")
	f.BoolVar(&o.IgnoreLimits, "ignore-limits", false, "send past the frame and byte rates the relay advertises (it then closes the connection); by default senders keep within them")
	f.BoolVar(&o.TLS, "tls", false, "TLS (a generated certificate for --in-process and --spawn)")
	f.DurationVar(&o.Jitter, "jitter", 0, "storm: reconnects spread uniformly over this (default 4s, the jitter a draining relay sends)")
	f.IntVar(&o.Window, "window", 0, "entries a publisher may be ahead of the slowest subscriber (default 16384; less than the relay's pending_entries, unless --ignore-limits)")
	f.IntVar(&o.AcceptRate, "accept-rate", 0, "relay accept rate per second for --in-process/--spawn (0: the relay default, 10000)")
	f.DurationVar(&o.Timeout, "timeout", 0, "bound on the whole run (default 5m)")
	f.DurationVar(&o.Settle, "settle", 0, fmt.Sprintf("idle: wait this long after the joins before reading memory (default %s, long enough for idle connections to park; negative: none)", bench.DefaultIdleSettle))
	f.BoolVar(&o.Heartbeats, "heartbeats", false, "idle: clients ping at the relay's heartbeat interval and answer its pings, as instances do, so they stay joined past its idle_timeout (for a --settle of minutes)")
	f.DurationVar(&o.ScavengeWait, "scavenge-wait", 0, fmt.Sprintf("idle: after the first reading's GC, wait this long and read RSS again (default %s; negative: at once)", bench.DefaultScavengeWait))
	f.BoolVar(&bf.inProcess, "in-process", false, "run the relay inside this process")
	f.BoolVar(&bf.spawn, "spawn", false, "run the relay in a child process of this binary")
	f.IntVar(&bf.pid, "pid", 0, "PID of the relay named RELAY_NAME, to read its CPU and RSS")
	f.BoolVar(&bf.json, "json", false, "print one JSON object")
	f.StringVar(&bf.nats, "nats", "", "measure the NATS server at this nats:// or tls:// URL instead of a relay")
	f.StringVar(&bf.natsCA, "nats-ca", "", "CA certificate file for a tls:// --nats URL")
	f.StringVar(&bf.profile, "relay-cpuprofile", "", "write a CPU profile of the spawned relay (--spawn) over the run to this file")
	f.BoolVar(&bf.serve, "serve", false, "run a bench relay and answer commands on stdin (used by --spawn)")
	f.MarkHidden("serve")
}

// benchTarget validates the flags and opens the relay to measure.
func benchTarget(cmd *cobra.Command, args []string, bf *benchFlags) (bench.Target, error) {
	modes := 0
	for _, on := range []bool{bf.inProcess, bf.spawn, len(args) == 1, bf.nats != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, errors.New("name a relay, or give --in-process, --spawn or --nats (exactly one)")
	}
	if bf.pid < 0 || (bf.pid > 0 && len(args) == 0 && bf.nats == "") {
		return nil, errors.New("--pid goes with RELAY_NAME or --nats: it names that server's process")
	}
	o := bf.opts.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch {
	case bf.nats != "":
		return bench.NATS(bf.nats, bf.natsCA, bf.pid)
	case bf.inProcess:
		if need := 2*benchConns(o) + 64; need > fdLimit() {
			return nil, fmt.Errorf("%d connections in one process need about %d file descriptors, over the limit of %d: use --spawn", benchConns(o), need, fdLimit())
		}
		return bench.StartInProcess(o.TLS, o.AcceptRate)
	case bf.spawn:
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		sargs := []string{"relay", "bench", "--serve", fmt.Sprintf("--accept-rate=%d", o.AcceptRate)}
		if o.TLS {
			sargs = append(sargs, "--tls")
		}
		return bench.Spawn(exe, sargs, o.TLS)
	}
	f, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	rc, err := f.Relay(args[0])
	if err != nil {
		return nil, err
	}
	if o.TLS != rc.Client.TLS {
		return nil, fmt.Errorf("relay %s: --tls must match its client url %s", rc.Name, rc.Client.URL)
	}
	var tc *tls.Config
	if rc.Client.TLS {
		c := rc.Client
		tc, err = tcp.ClientTLSConfig(c.CACertFile, c.CertFile, c.KeyFile, c.ServerName)
		if err != nil {
			return nil, err
		}
	}
	return bench.External(rc.Client.Address, tc, bf.pid), nil
}

// benchConns counts the client connections a run opens.
func benchConns(o bench.Options) int {
	switch o.Scenario {
	case bench.ScenarioFanout:
		return o.Pub + o.Sub
	case bench.ScenarioChannels:
		return o.Channels * o.Sub
	}
	return o.Idle
}

func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return int(rl.Cur)
}

func runBench(cmd *cobra.Command, args []string, bf *benchFlags) error {
	t, err := benchTarget(cmd, args, bf)
	if err != nil {
		return err
	}
	defer t.Close()
	o := bf.opts
	o.Progress = cmd.ErrOrStderr()
	o.ProgressLines = !isTerminal(o.Progress)
	if bf.profile != "" {
		path, err := filepath.Abs(bf.profile)
		if err != nil {
			return err
		}
		stop, err := bench.Profile(t, path)
		if err != nil {
			return err
		}
		defer stop()
	}
	r, err := bench.Run(cmd.Context(), t, o)
	if agent.IsPermanent(err) {
		who := "relay"
		if len(args) == 1 {
			who += " " + args[0]
		}
		return fmt.Errorf("%s at %s: %w", who, t.Addr(), explainDial(err, t.ClientTLS() != nil))
	}
	if err != nil {
		return err
	}
	if bf.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		r.WriteText(cmd.OutOrStdout())
	}
	if !r.Complete {
		return fmt.Errorf("bench run %w: %s", errIncomplete, r.Shortfall())
	}
	return nil
}
