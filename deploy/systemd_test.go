package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/testutil"
)

const unitFile = "systemd/cosnim-relay@.service"

// unitDirectives maps "Section.Key" to the values of a unit file, in order.
func unitDirectives(t *testing.T, text string) map[string][]string {
	t.Helper()
	m := make(map[string][]string)
	section := ""
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: bad line %q", unitFile, line)
			}
			m[section+"."+k] = append(m[section+"."+k], v)
		}
	}
	return m
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit,
// instantiated for relay "main" with ExecStart pointing at a built binary
// (verify requires it to exist); any warning fails, since verify exits 0
// on unknown keys and bad values. It also requires systemd's offline
// exposure score to stay at 2.0 or below.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	bin := cosnimBin(t)
	unit := filepath.Join(t.TempDir(), "cosnim-relay@main.service")
	testutil.WriteFile(t, unit, strings.ReplaceAll(readFile(t, unitFile), "/usr/local/bin/cosnim", bin))
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}

// TestSystemdUnitHardening checks each hardening directive by value, the
// stop settings against the documented drain_grace, and the command lines
// against the real binary (ExecStartPre checks the configuration;
// ExecStart starts a relay that drains on KillSignal within
// TimeoutStopSec).
func TestSystemdUnitHardening(t *testing.T) {
	d := unitDirectives(t, readFile(t, unitFile))
	for key, want := range map[string]string{ // sorted: independent checks
		"DynamicUser":             "yes",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"PrivateUsers":            "yes",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"ProtectClock":            "yes",
		"ProtectHostname":         "yes",
		"ProtectProc":             "invisible",
		"SystemCallArchitectures": "native",
		"UMask":                   "0077",
		"KillSignal":              "SIGTERM",
		"Restart":                 "on-failure",
	} {
		if got := d["Service."+key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s=%q, want %q", unitFile, key, got, want)
		}
	}
	if got := strings.Join(d["Service.SystemCallFilter"], " | "); got != "@system-service | ~@privileged @resources" {
		t.Errorf("%s: SystemCallFilter %q, want @system-service then ~@privileged @resources", unitFile, got)
	}
	for _, key := range []string{"ReadWritePaths", "StateDirectory", "CacheDirectory", "LogsDirectory", "RuntimeDirectory"} {
		if v, ok := d["Service."+key]; ok {
			t.Errorf("%s: %s=%q; a relay writes nothing", unitFile, key, v)
		}
	}

	grace := defaultDrainGrace(t)
	stop, err := time.ParseDuration(d["Service.TimeoutStopSec"][0])
	if err != nil || stop <= grace {
		t.Fatalf("%s: TimeoutStopSec=%q (%v), want above drain_grace %v", unitFile, d["Service.TimeoutStopSec"], err, grace)
	}

	pre := strings.Fields(d["Service.ExecStartPre"][0])
	start := strings.Fields(d["Service.ExecStart"][0])
	for _, cmd := range [][]string{pre, start} {
		if cmd[0] != "/usr/local/bin/cosnim" || !strings.Contains(strings.Join(cmd, " "), "--config /etc/cosnim/cosnim.yaml") {
			t.Errorf("%s: command %q, want /usr/local/bin/cosnim ... --config /etc/cosnim/cosnim.yaml", unitFile, cmd)
		}
	}
	if strings.Join(pre[1:3], " ") != "config check" {
		t.Errorf("%s: ExecStartPre %q, want cosnim config check", unitFile, pre)
	}
	if start[3] != "%i" {
		t.Fatalf("%s: ExecStart %q, want the relay name %%i", unitFile, start)
	}
	start[3] = "main"
	startRelayCmd(t, start[1:], stop)
}
