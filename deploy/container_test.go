package deploy_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const containerFile = "container/Containerfile"

// instruction is one Containerfile instruction, continuations joined.
type instruction struct{ cmd, args string }

func parseContainerfile(t *testing.T) []instruction {
	t.Helper()
	var out []instruction
	var cur string
	for line := range strings.SplitSeq(readFile(t, containerFile), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || trimmed[0] == '#') {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += s + " "
			continue
		}
		cur += trimmed
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// TestContainerfile checks what can be checked without a container
// runtime: a Go builder stage that builds a static binary, a runtime stage
// that copies only the binary, a non-root user, a health check on /healthz
// at the port deploy/cosnim.yaml serves it on, SIGTERM to stop, and a
// default command that starts and drains a relay with the real binary.
func TestContainerfile(t *testing.T) {
	var stages []string
	var user, health, stop string
	var entry, cmd []string
	built, copied := false, false
	for _, in := range parseContainerfile(t) {
		switch in.cmd {
		case "FROM":
			stages = append(stages, in.args)
		case "RUN":
			if strings.Contains(in.args, "go build") {
				built = len(stages) == 1 && strings.Contains(in.args, "CGO_ENABLED=0") && strings.Contains(in.args, "./cmd/cosnim")
			}
		case "COPY":
			if strings.HasPrefix(in.args, "--from=build ") && len(stages) == 2 {
				copied = true
			}
		case "USER":
			user = in.args
		case "HEALTHCHECK":
			health = in.args
		case "STOPSIGNAL":
			stop = in.args
		case "ENTRYPOINT":
			json.Unmarshal([]byte(in.args), &entry)
		case "CMD":
			json.Unmarshal([]byte(in.args), &cmd)
		}
	}
	if len(stages) != 2 || !strings.Contains(stages[0], "golang:") || !strings.HasSuffix(stages[0], " AS build") || strings.Contains(stages[1], "golang") {
		t.Errorf("stages %q, want a golang builder AS build, then a small runtime image", stages)
	}
	if !built {
		t.Errorf("no CGO_ENABLED=0 go build of ./cmd/cosnim in the builder stage")
	}
	if !copied {
		t.Errorf("the runtime stage does not COPY --from=build")
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q, want a non-root user", user)
	}
	if stop != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q, want SIGTERM (the relay drains on it)", stop)
	}

	// The health check fetches /healthz where the example configuration
	// serves its operations listener.
	var example struct {
		Relays map[string]struct {
			Server struct {
				MetricsURL string `yaml:"metrics_url"`
			}
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "cosnim.yaml")), &example); err != nil {
		t.Fatal(err)
	}
	mu, err := url.Parse(example.Relays["main"].Server.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	_, probe, _ := strings.Cut(health, "CMD ")
	var argv []string
	if err := json.Unmarshal([]byte(probe), &argv); err != nil || len(argv) == 0 ||
		argv[len(argv)-1] != "http://127.0.0.1:"+mu.Port()+"/healthz" {
		t.Errorf("HEALTHCHECK %q, want a CMD fetching http://127.0.0.1:%s/healthz (%v)", health, mu.Port(), err)
	}

	if len(entry) != 1 || entry[0] != "/usr/local/bin/cosnim" {
		t.Fatalf("ENTRYPOINT %q, want [/usr/local/bin/cosnim]", entry)
	}
	if !strings.Contains(strings.Join(cmd, " "), "--config /etc/cosnim/cosnim.yaml") {
		t.Errorf("CMD %q, want --config /etc/cosnim/cosnim.yaml (the read-only mount)", cmd)
	}
	startRelayCmd(t, cmd, 2*defaultDrainGrace(t))
}

// TestExampleConfigChecks runs `cosnim config check` on deploy/cosnim.yaml
// beside certificate files at the relative paths it names.
func TestExampleConfigChecks(t *testing.T) {
	var cfg struct {
		Relays map[string]struct{ Server relayServer }
	}
	data := readFile(t, "cosnim.yaml")
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg.Relays["main"].Server
	configCheck(t, data, t.TempDir(), s.SSLCertFile, s.PrivateKeyFile)
}
