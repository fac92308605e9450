package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A script is a scenario written as commands, each followed by "----" and
// the output it must print, in the style of etcd-io/raft's interaction
// tests. Commands:
//
//	cluster seed=S channels=C clients=N spanning=M
//	                                       start a cluster (first command); spanning
//	                                       clients m0.. join every channel
//	announce CLIENT REF                    CLIENT creates capsule REF
//	run DURATION                           advance virtual time
//	crash relay|CLIENT                     kill (the relay loses its memory)
//	restart relay|CLIENT                   start again
//	reset CLIENT                           reset CLIENT's connection
//	failpoint NAME on|off                  toggle a failpoint
//	stabilize                              heal, restart all, run until converged
//	roster CLIENT                          print CLIENT's capsule references
//	relay                                  print relay counters
//
// and every fault of the registry by its kind (faults.go): partition
// CLIENT..., oneway CLIENT, clog CLIENT, swizzle CLIENT... INTERVAL, heal,
// crash-relay [DOWNTIME], crash-client CLIENT [DOWNTIME], reset CLIENT,
// refuse DURATION, replay CLIENT, buggify FAILPOINT DURATION, drift CLIENT
// OFFSET, drain GRACE. Each command prints the frames the relay delivered to
// clients meanwhile (joins, deliveries, deltas, errors), then violations.
type scriptCase struct {
	note string // comment lines before the command, kept on rewrite
	cmd  string
	want string
	got  string
}

// RunScriptFile runs the script in path, printing a line per mismatch to
// out. With rewrite, it writes the actual outputs back into the file.
func RunScriptFile(out io.Writer, path string, rewrite bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cases, err := parseScript(string(data))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var s scriptRun
	failed := 0
	for i := range cases {
		c := &cases[i]
		c.got = s.exec(c.cmd)
		if c.got != c.want {
			failed++
			fmt.Fprintf(out, "%s: %s\n  got:\n%s  want:\n%s", path, c.cmd, indent(c.got), indent(c.want))
		}
	}
	if rewrite {
		var b strings.Builder
		for i, c := range cases {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString(c.note + c.cmd + "\n----\n" + c.got)
		}
		return os.WriteFile(path, []byte(b.String()), 0o644)
	}
	if failed > 0 {
		return fmt.Errorf("%s: %d of %d commands printed something else", path, failed, len(cases))
	}
	fmt.Fprintf(out, "%s: %d commands ok\n", path, len(cases))
	return nil
}

func indent(s string) string {
	if s == "" {
		return "    (nothing)\n"
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

func parseScript(text string) ([]scriptCase, error) {
	var cases []scriptCase
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	var note strings.Builder
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(t, "#") {
			note.WriteString(t + "\n")
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		c := scriptCase{note: note.String(), cmd: t}
		note.Reset()
		if !sc.Scan() || strings.TrimSpace(sc.Text()) != "----" {
			return nil, fmt.Errorf("line %d: command %q is not followed by ----", line, t)
		}
		line++
		var want bytes.Buffer
		for sc.Scan() {
			line++
			if strings.TrimSpace(sc.Text()) == "" {
				break
			}
			want.WriteString(sc.Text() + "\n")
		}
		c.want = want.String()
		cases = append(cases, c)
	}
	return cases, sc.Err()
}

// scriptRun is the state of one script.
type scriptRun struct {
	w *world
}

func (s *scriptRun) exec(cmd string) (out string) {
	f := strings.Fields(cmd)
	args := f[1:]
	if s.w == nil && f[0] != "cluster" {
		return "error: the first command must be cluster\n"
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("error: %v\n", r)
		}
	}()
	w := s.w
	switch f[0] {
	case "cluster":
		return s.cluster(args)
	case "announce":
		if err := s.client(arg(0)).announceRef(arg(1)); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
	case "run":
		d, err := time.ParseDuration(arg(0))
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		w.net.RunUntil(w.net.Now().Add(d))
		w.check()
	case "crash":
		if arg(0) == relayName {
			w.apply(Fault{Kind: FaultCrashRelay})
		} else {
			s.client(arg(0))
			w.apply(Fault{Kind: FaultCrashClient, Targets: args})
		}
	case "restart":
		s.restart(arg(0))
	case "failpoint":
		w.setFailpoint(arg(0), arg(1) == "on")
	case "stabilize":
		return s.stabilize()
	case "roster":
		return s.roster(s.client(arg(0)))
	case "relay":
		return s.relayLine()
	default:
		// Every fault of the registry is a verb (faults.go).
		flt, err := parseFault(f[0], args)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		w.apply(flt)
	}
	return s.delivered() + s.violations()
}

// client is the script's client name; a name that is none ends the
// command with an error.
func (s *scriptRun) client(name string) *simClient {
	c := s.w.byName[name]
	if c == nil {
		panic(fmt.Sprintf("no client %q", name))
	}
	return c
}

// cluster starts the world: "cluster seed=N channels=N clients=N spanning=N".
func (s *scriptRun) cluster(args []string) string {
	sc := Scenario{Channels: 1, ClientsPerChannel: 2}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Sprintf("error: %s: %v\n", a, err)
		}
		switch k {
		case "seed":
			sc.Seed = n
		case "channels":
			sc.Channels = int(n)
		case "clients":
			sc.ClientsPerChannel = int(n)
		case "spanning":
			sc.HubSpanning = int(n)
		default:
			return fmt.Sprintf("error: unknown cluster option %q\n", k)
		}
	}
	s.w = newWorld(sc, Options{})
	s.w.script = &strings.Builder{}
	s.w.net.RunUntil(s.w.net.Now().Add(time.Second))
	s.w.script.Reset()
	return "ok\n"
}

// restart brings the relay or a client back, crashing it first if it is up.
func (s *scriptRun) restart(name string) {
	w := s.w
	if name == relayName {
		if w.relayUp {
			w.relayDown()
			w.relayNode.Crash()
		}
		w.startRelay()
		return
	}
	c := s.client(name)
	if c.up {
		w.touch.untilRestart(c.name, w.net.Now())
		c.save()
		c.node.Crash()
		c.tap.lost()
	}
	c.start()
}

// relayLine is the relay's state in one line.
func (s *scriptRun) relayLine() string {
	w := s.w
	if !w.relayUp {
		return "relay down\n"
	}
	st := w.relay.Stats()
	cache, _ := w.relay.Usage()
	return fmt.Sprintf("conns=%d channels=%d cached=%d stored=%d delivered=%d\n",
		w.relay.Conns(), w.relay.ChannelCount(), cache, st.EntriesIn, st.Delivered)
}

// delivered returns what the network delivered to clients since the last
// command, so that a script reads as a trace.
func (s *scriptRun) delivered() string {
	out := s.w.script.String()
	s.w.script.Reset()
	return out
}

func (s *scriptRun) violations() string {
	var b strings.Builder
	for _, v := range s.w.violations {
		b.WriteString("violation: " + v + "\n")
	}
	s.w.violations = nil
	return b.String()
}

// stabilize ends faults and runs until every client converges or HealBound
// passes, then resumes the chaos phase for later commands.
func (s *scriptRun) stabilize() string {
	w := s.w
	w.healAt = w.net.Now()
	w.converged = time.Time{}
	w.heal()
	end := w.healAt.Add(w.healBound)
	for !w.net.Now().After(end) && w.converged.IsZero() {
		w.net.RunUntil(w.net.Now().Add(checkEvery))
		w.check()
	}
	w.healed = false
	out := s.delivered() + s.violations()
	if w.converged.IsZero() {
		return out + fmt.Sprintf("not converged within %v\n", w.healBound)
	}
	return out + fmt.Sprintf("converged within %v\n", w.converged.Sub(w.healAt).Round(time.Second))
}

func (s *scriptRun) roster(c *simClient) string {
	if !c.up {
		return "down\n"
	}
	var refs []string
	for _, e := range c.roster().Entries() {
		ref, err := s.w.keys[c.ch].Open(e)
		if err != nil {
			refs = append(refs, "unreadable entry")
			continue
		}
		refs = append(refs, string(ref))
	}
	slices.Sort(refs)
	if len(refs) == 0 {
		return "empty\n"
	}
	return strings.Join(refs, "\n") + "\n"
}
