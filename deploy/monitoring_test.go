package deploy_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile = "grafana/cosnim-relay.json"
	rulesFile     = "prometheus/cosnim-relay.rules.yml"
	rulesTestFile = "prometheus/cosnim-relay.rules.test.yml"
)

var live struct {
	once   sync.Once
	scrape string
}

// scrapeOnce is one /metrics scrape of a live relay, shared by the tests.
func scrapeOnce(t *testing.T) string {
	t.Helper()
	live.once.Do(func() { live.scrape = liveMetrics(t) })
	if live.scrape == "" {
		t.Fatal("no scrape (an earlier test failed to get one)")
	}
	return live.scrape
}

// dashboardExprs returns every panel's query, nested rows included.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	type panel struct {
		Title   string
		Targets []struct{ Expr string }
		Panels  []json.RawMessage
	}
	var d struct {
		Panels     []json.RawMessage
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	exprs := make(map[string][]string) // by panel title
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: %v", dashboardFile, err)
			}
			for _, tg := range p.Targets {
				exprs[p.Title] = append(exprs[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			s, _ := q["query"].(string)
			exprs["variable "+v.Name] = append(exprs["variable "+v.Name], s)
		}
	}
	return exprs
}

// TestDashboardQueriesExportedMetrics checks that every metric the
// dashboard queries is one a live relay exports, and that every cosnim
// metric the relay exports is on the dashboard.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	exported := exportedNames(t, scrapeOnce(t))
	charted := map[string]bool{}
	for title, exprs := range dashboardExprs(t) { // sorted: independent checks
		for _, e := range exprs {
			names := queriedNames(e)
			if len(names) == 0 && !strings.HasPrefix(title, "variable") {
				t.Errorf("panel %q: query %q reads no relay metric", title, e)
			}
			for _, n := range names {
				charted[n] = true
				if !exported[n] {
					t.Errorf("panel %q queries %s, which the relay does not export", title, n)
				}
			}
		}
	}
	for n := range exported { // sorted: independent checks
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(n, "cosnim_") && !charted[n] && !charted[family+"_bucket"] {
			t.Errorf("the relay exports %s; no panel shows it", n)
		}
	}
}

// TestAlertRules runs promtool check rules and the rules' unit tests
// (each alert fires on the series that should raise it and stays quiet on
// a healthy relay), and checks that every metric a rule reads is one a
// live relay exports.
func TestAlertRules(t *testing.T) {
	promtool := needPromtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, rulesFile)), &rules); err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t, scrapeOnce(t))
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, n := range queriedNames(r.Expr) {
				if !exported[n] {
					t.Errorf("alert %s reads %s, which the relay does not export", r.Alert, n)
				}
			}
		}
	}
	// The alerts an operator of a relay needs, by name.
	for _, want := range []string{"CosnimRelayDown", "CosnimRelayMemoryHigh", "CosnimRelaySheddingLoad",
		"CosnimRelayHandshakeFailures", "CosnimRelaySlowMembers", "CosnimRelayResyncs", "CosnimRelayBackboneDown"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("%s has no alert %s", rulesFile, want)
		}
	}
}

// TestPromtoolCheckMetrics lints a live relay's /metrics with promtool,
// after checking that promtool does report a lint problem.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := needPromtool(t)
	check := func(text string) (string, error) {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if _, err := check("# HELP bad A counter without _total.\n# TYPE bad counter\nbad 1\n"); err == nil {
		t.Fatal("promtool check metrics accepts a counter without _total; it cannot vouch for the relay's")
	}
	if out, err := check(scrapeOnce(t)); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus; .ci/run does)")
	}
	return p
}
