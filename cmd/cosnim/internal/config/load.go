package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cosnim/relays/internal/files"
)

// Load reads, decodes and validates a configuration.
//
// With a non-empty path it reads that file. With "" it uses the first of:
// the file named by $COSNIM_CONFIG, ./cosnim.yaml, and the embedded default
// (one relay named "local", client and server on tcp://127.0.0.1:7420).
// File.Path and File.Source record which was used.
//
// Relative file names inside the configuration are resolved against the
// directory of the configuration file (the working directory for the
// embedded default); the File holds the resolved names.
//
// Problems in the file come back as Errors, each an *Error naming the file,
// line and key path.
func Load(path string) (*File, error) {
	src := SourceFlag
	if path == "" {
		src = SourceEnv
		path = os.Getenv(EnvVar)
	}
	if path == "" {
		src = SourceCwd
		path = CwdFile
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return parse(defaultYAML, "", SourceEmbedded)
		}
	}
	data, err := files.Read(path, files.MaxConfig)
	if err != nil {
		return nil, fmt.Errorf("config: reading %s (from %s): %w", path, src, err)
	}
	return parse(data, path, src)
}

// Parse decodes and validates data as if read from path (which may be ""
// for data that came from no file; relative names are then resolved against
// the working directory).
func Parse(data []byte, path string) (*File, error) {
	return parse(data, path, SourceFlag)
}

func parse(data []byte, path string, src Source) (*File, error) {
	name := path
	if src == SourceEmbedded || path == "" {
		name = "(embedded default)"
		if src != SourceEmbedded {
			name = "(config)"
		}
	}
	d := &decoder{name: name, lines: map[string]int{}}
	f := d.parse(data)
	if f != nil {
		f.Path, f.Source = path, src
		d.validate(f, filepath.Dir(path))
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	return f, nil
}

// Name is how messages refer to the file: its path, or "(embedded default)".
func (f *File) Name() string {
	if f.Source == SourceEmbedded {
		return "(embedded default)"
	}
	if f.Path == "" {
		return "(config)"
	}
	return f.Path
}

// RelayNames lists the defined relays in sorted order.
func (f *File) RelayNames() []string { return sortedKeys(f.Relays) }

// Relay returns the named relay, or an error wrapping ErrUndefinedRelay
// that lists the defined names.
func (f *File) Relay(name string) (*Relay, error) {
	if r, ok := f.Relays[name]; ok {
		return r, nil
	}
	return nil, newProblem(ErrUndefinedRelay, "relay %q is not defined in %s (%s)",
		name, f.Name(), definedList(f.RelayNames()))
}

func definedList(names []string) string {
	if len(names) == 0 {
		return "no relays are defined"
	}
	return "defined: " + strings.Join(names, ", ")
}
