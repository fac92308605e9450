package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSimProgressOnTerminal: on a terminal the progress line is redrawn
// with '\r'; --json stdout still holds only JSON.
func TestSimProgressOnTerminal(t *testing.T) {
	var stdout bytes.Buffer
	p := startInPTY(t, &stdout, "sim", "--seeds", "20", "--json")
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("sim: code %d, terminal %q", code, p.out.String())
	}
	if !strings.Contains(p.out.String(), "\rsim: 20/20 seeds") {
		t.Errorf("terminal got %q; want a progress line redrawn with \\r", p.out.String())
	}
	var s summary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil || s.Runs != 20 {
		t.Errorf("--json stdout is not the summary alone (%v): %q", err, stdout.String())
	}
}

// TestTopOnTerminal: in a pseudo-terminal, top draws the live view in
// place, refreshes it, quits on q with status 0 and gives the terminal
// back as it found it (line editing and echo on).
func TestTopOnTerminal(t *testing.T) {
	port, metricsPort, cfg := startOpsRelay(t)
	fillChannels(t, port, metricsPort, 2)

	p := startInPTY(t, nil, "relay", "top", "r", "--config", cfg, "--interval", "200ms")
	deadline := time.Now().Add(kitTimeout)
	// Two refreshes: the view is drawn from the top-left corner each time.
	for strings.Count(p.out.String(), "\x1b[H") < 3 || !strings.Contains(p.out.String(), "top channels by cached bytes") {
		if time.Now().After(deadline) {
			t.Fatalf("top drew %q", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range []string{"connections", "1 live", "channels 2", "entries in", "delivered", "memory", "send queues", "slow members", "\x1b[?25l"} {
		if !strings.Contains(p.out.String(), s) {
			t.Errorf("the view lacks %q", s)
		}
	}
	// The pty's modes, as set on the slave side, read through the master.
	tio, err := unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("while top runs the terminal should pass keys at once, unechoed: lflag %#x", tio.Lflag)
	}
	if _, err := p.master.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("top exited %d after q", code)
	}
	// The pty's reader may still be copying top's last bytes.
	for end := time.Now().Add(2 * time.Second); !strings.Contains(p.out.String(), "\x1b[?25h") && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(p.out.String(), "\x1b[?25h") {
		t.Errorf("top did not show the cursor again")
	}
	tio, err = unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
		t.Errorf("terminal left without line editing or echo: lflag %#x", tio.Lflag)
	}
}
