//go:build unix

package files

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(small, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		max        int64
		want       error
	}{
		{"regular file at its cap", small, 10, nil},
		{"symbolic link to a regular file", link, 10, nil},
		{"one byte over the cap", small, 9, ErrTooLarge},
		{"device that never ends", "/dev/zero", MaxPEM, ErrNotRegular},
		{"named pipe (would block on open)", fifo, MaxPEM, ErrNotRegular},
		{"directory", dir, MaxPEM, ErrNotRegular},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Read(tc.file, tc.max)
			if !errors.Is(err, tc.want) || (tc.want == nil && string(b) != "0123456789") {
				t.Fatalf("Read(%s, %d) = %q, %v; want %v", tc.file, tc.max, b, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := Read(filepath.Join(dir, "absent"), MaxPEM); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v, want ErrNotExist", err)
	}
}

func TestLoosePermissions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode  os.FileMode
		loose bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o604, true}, {0o660, true}} {
		f := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, tc.mode); err != nil {
			t.Fatal(err)
		}
		if mode, loose := LoosePermissions(f); loose != tc.loose || mode != tc.mode {
			t.Errorf("LoosePermissions(%v) = %v, %v; want %v", tc.mode, mode, loose, tc.loose)
		}
	}
}
