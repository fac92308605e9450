package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/buildinfo"
)

// commitTime is the commit time of the temporary repository, so the
// stamped vcs.time is known.
const commitTime = "2026-01-02T03:04:05Z"

// TestVersionOfBuiltBinary builds the real binary with -buildvcs=true and
// checks that `cosnim version --json`, `cosnim version` and
// `cosnim --version` report the revision, commit time, modified flag,
// module version (pseudo-version, tag, +dirty) and Go version that the go
// command stamped.
//
// It builds from a throwaway git repository holding a copy of this
// checkout's files (tracked and untracked, so uncommitted work is what is
// tested): the go command stamps nothing in a git worktree (its .git is a
// file), and a fresh repository gives a known revision, time and tag.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not found; the go command stamps VCS information with git")
	}
	src := copyCheckout(t)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_AUTHOR_DATE="+commitTime,
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_COMMITTER_DATE="+commitTime)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "--no-verify", "--no-gpg-sign", "-m", "snapshot")
	rev := git("rev-parse", "HEAD")

	// A clean, untagged commit: a pseudo-version naming the commit.
	bin := buildIn(t, src)
	got := versionJSON(t, bin)
	want := buildinfo.Info{
		Version:   "v0.0.0-20260102030405-" + rev[:12],
		Revision:  rev,
		Time:      commitTime,
		Modified:  false,
		GoVersion: runtime.Version(),
	}
	if got != want {
		t.Errorf("clean build: version --json = %+v, want %+v", got, want)
	}
	text := runVersionBin(t, bin, "version")
	for _, line := range []string{"cosnim " + want.Version, "revision  " + rev, "time      " + commitTime,
		"modified  false", "go        " + runtime.Version()} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("version output lacks %q:\n%s", line, text)
		}
	}
	if out, wantOut := runVersionBin(t, bin, "--version"), "cosnim version "+want.String()+"\n"; out != wantOut {
		t.Errorf("--version = %q, want %q", out, wantOut)
	}

	// A tagged commit: the tag.
	git("tag", "v1.8.7")
	got = versionJSON(t, buildIn(t, src))
	want.Version = "v1.8.7"
	if got != want {
		t.Errorf("tagged build: version --json = %+v, want %+v", got, want)
	}

	// Uncommitted changes: modified, and the version says so.
	if err := os.WriteFile(filepath.Join(src, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = versionJSON(t, buildIn(t, src))
	want.Version, want.Modified = "v1.8.7+dirty", true
	if got != want {
		t.Errorf("modified build: version --json = %+v, want %+v", got, want)
	}
}

// copyCheckout copies the module's files that git knows or would add into
// a temporary directory.
func copyCheckout(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	list := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	list.Dir = root
	names, err := list.Output()
	if err != nil {
		t.Skipf("not a git checkout (%v); nothing to stamp", err)
	}
	dst := t.TempDir()
	for name := range bytes.SplitSeq(bytes.TrimSuffix(names, []byte{0}), []byte{0}) {
		b, err := os.ReadFile(filepath.Join(root, string(name)))
		if os.IsNotExist(err) {
			continue // deleted but not yet staged
		}
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, string(name))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func buildIn(t *testing.T, src string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cosnim")
	cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/cosnim")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runVersionBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return string(out)
}

func versionJSON(t *testing.T, bin string) buildinfo.Info {
	t.Helper()
	var in buildinfo.Info
	out := runVersionBin(t, bin, "version", "--json")
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("version --json: %v\n%s", err, out)
	}
	return in
}

// TestVersionCommand checks the command in process: the JSON carries the
// running binary's build and the text names every field.
func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"version", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got buildinfo.Info
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || got != buildinfo.Get() {
		t.Errorf("version --json = %+v (%v), want %+v", got, err, buildinfo.Get())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, field := range []string{"cosnim ", "revision", "time", "modified", "go "} {
		if !strings.Contains(stdout.String(), field) {
			t.Errorf("version output lacks %q:\n%s", field, stdout.String())
		}
	}
}
