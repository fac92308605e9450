package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// TestConvergesUnderFaults is a state-machine test: rapid picks a schedule
// of announces, partitions, crashes, resets and time steps, checks safety
// after every step, then heals and checks that every client holds exactly
// what a plain model (a set per channel) says was announced there.
// Failures shrink to a minimal schedule; run longer with -rapid.checks=N.
func TestConvergesUnderFaults(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var s scriptRun
		s.exec(fmt.Sprintf("cluster seed=%d channels=%d clients=%d spanning=%d",
			rapid.Uint64().Draw(rt, "seed"), rapid.IntRange(1, 2).Draw(rt, "channels"), rapid.IntRange(2, 3).Draw(rt, "clients"),
			rapid.IntRange(0, 1).Draw(rt, "spanning")))
		w := s.w
		names := make([]string, 0, len(w.clients))
		for _, c := range w.clients {
			names = append(names, c.name)
		}
		model := make([]map[string]bool, w.sc.Channels)
		for i := range model {
			model[i] = map[string]bool{}
		}
		next := 0
		do := func(cmd string) {
			// Commands print the frames delivered, then violations.
			if out := s.exec(cmd); strings.Contains(out, "violation:") || strings.HasPrefix(out, "error") {
				rt.Fatalf("%s: %s", cmd, out)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"announce": func(rt *rapid.T) {
				c := w.byName[rapid.SampledFrom(names).Draw(rt, "client")]
				if !c.up {
					rt.Skip("client down")
				}
				ref := fmt.Sprintf("r%d", next)
				next++
				model[c.ch][ref] = true
				do("announce " + c.name + " " + ref)
			},
			"partition": func(rt *rapid.T) {
				group := rapid.SliceOfNDistinct(rapid.SampledFrom(names), 1, len(names), rapid.ID[string]).Draw(rt, "group")
				do("partition " + strings.Join(group, " "))
			},
			"oneway": func(rt *rapid.T) { do("oneway " + rapid.SampledFrom(names).Draw(rt, "client")) },
			"heal":   func(rt *rapid.T) { do("heal") },
			"crash relay": func(rt *rapid.T) {
				do("crash relay")
			},
			"restart relay": func(rt *rapid.T) { do("restart relay") },
			"crash client": func(rt *rapid.T) {
				do("crash " + rapid.SampledFrom(names).Draw(rt, "client"))
			},
			"restart client": func(rt *rapid.T) {
				do("restart " + rapid.SampledFrom(names).Draw(rt, "client"))
			},
			"reset": func(rt *rapid.T) { do("reset " + rapid.SampledFrom(names).Draw(rt, "client")) },
			"advance": func(rt *rapid.T) {
				do(fmt.Sprintf("run %dms", rapid.IntRange(1, 8000).Draw(rt, "ms")))
			},
		})
		if out := s.exec("stabilize"); strings.Contains(out, "violation:") || !strings.Contains(out, "converged within") {
			rt.Fatalf("after heal: %s", out)
		}
		for _, c := range w.clients {
			want := make([]string, 0, len(model[c.ch]))
			for ref := range model[c.ch] { // sorted: below
				want = append(want, ref)
			}
			slices.Sort(want)
			got := strings.Fields(s.roster(c))
			if len(want) == 0 {
				want = []string{"empty"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				rt.Fatalf("%s roster differs from the model (-want +got):\n%s", c.name, diff)
			}
		}
		if d := w.net.Now().Sub(w.start()); d <= 0 || d > 24*time.Hour {
			rt.Fatalf("virtual time %v out of range", d)
		}
	})
}
