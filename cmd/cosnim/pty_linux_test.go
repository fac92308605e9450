package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cosnim/relays/internal/testutil"
)

// openPTY opens a pseudo-terminal pair through /dev/ptmx (a few ioctls,
// so the tests need no pty package). The caller's process gets the slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		t.Fatalf("window size: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyProc is the binary running with the slave side of a pty as its
// controlling terminal; out collects what it wrote there.
type ptyProc struct {
	master *os.File
	out    *testutil.SyncBuffer
	done   chan error
	cmd    *exec.Cmd
}

// startInPTY runs the binary with stdin and stderr on a pty; stdout too
// unless stdout is given.
func startInPTY(t *testing.T, stdout io.Writer, args ...string) *ptyProc {
	t.Helper()
	m, s := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), kitTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, kitBinary(t), args...)
	cmd.Env = kitEnv("TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	p := &ptyProc{master: m, out: &testutil.SyncBuffer{}, done: make(chan error, 1), cmd: cmd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close() // the child holds it now; EOF (EIO) on m once it exits
	go io.Copy(p.out, m)
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

// exitCode waits for the process and returns its exit code.
func (p *ptyProc) exitCode(t *testing.T) int {
	t.Helper()
	err := <-p.done
	p.done <- err
	return exitCode(t, err)
}
