// Package files reads the files an operator names (configuration,
// certificates, keys, CA bundles, secrets) with a size cap, and only when
// they are regular files: a name such as /dev/zero, a FIFO or a huge file
// gets a clear error at once instead of filling memory or blocking.
package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// Size caps, the one source for every reader and for the docs. Real files
// are far smaller: a configuration of a few KiB, a PEM chain of a few KiB,
// a CA bundle of a few hundred KiB.
const (
	// MaxConfig caps a configuration file (thousands of relays or
	// authorized clients).
	MaxConfig = 256 << 10
	// MaxPEM caps a certificate, key, CA bundle, NATS creds or nkey seed file.
	MaxPEM = 4 << 20
	// MaxSecret caps a continuum key file.
	MaxSecret = 64 << 10
)

// Sentinel errors of Read and Check.
var (
	// ErrNotRegular: the name is a device, FIFO, socket or directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is over its cap.
	ErrTooLarge = errors.New("file too large")
)

// Read returns the contents of the regular file name, or an error
// wrapping ErrNotRegular or ErrTooLarge (or the open error). It never
// reads more than max+1 bytes, so a file that grows while it is read is
// refused too.
func Read(name string, max int64) ([]byte, error) {
	// Stat first, so that opening a FIFO cannot block.
	if err := Check(name, max); err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat() // the file opened, if it changed since Check
	if err != nil {
		return nil, err
	}
	if err := checkInfo(name, st, max); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, tooLarge(name, max)
	}
	return data, nil
}

// Check reports whether name is a regular file (after symbolic links) of
// at most max bytes, without opening it.
func Check(name string, max int64) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	return checkInfo(name, st, max)
}

func checkInfo(name string, st fs.FileInfo, max int64) error {
	if !st.Mode().IsRegular() {
		what := "a special file"
		switch {
		case st.IsDir():
			what = "a directory"
		case st.Mode()&fs.ModeDevice != 0:
			what = "a device"
		case st.Mode()&fs.ModeNamedPipe != 0:
			what = "a named pipe"
		case st.Mode()&fs.ModeSocket != 0:
			what = "a socket"
		}
		return fmt.Errorf("%s is %s: %w", name, what, ErrNotRegular)
	}
	if st.Size() > max {
		return tooLarge(name, max)
	}
	return nil
}

func tooLarge(name string, max int64) error {
	return fmt.Errorf("%s: %w (over %s)", name, ErrTooLarge, size(max))
}

// size prints a cap the way the docs do.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// LoosePermissions reports whether a key file can be read or written by
// its group or by others (mode & 0o077), with its mode. A file that
// cannot be looked at is not reported: its reader reports that.
func LoosePermissions(name string) (fs.FileMode, bool) {
	st, err := os.Stat(name)
	if err != nil || runtime.GOOS == "windows" { // no Unix modes there
		return 0, false
	}
	return st.Mode().Perm(), st.Mode().Perm()&0o077 != 0
}
