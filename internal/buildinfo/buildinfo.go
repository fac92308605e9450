// Package buildinfo reports what a binary was built from: module version,
// VCS revision and time, whether the tree was modified, and the Go version.
// The go command stamps these when it builds inside a checkout (see
// -buildvcs); a binary built otherwise reports what it can.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Devel is the version of a binary not built from a tagged module.
const Devel = "(devel)"

// Info describes a build. Empty fields are unknown.
type Info struct {
	// Version is the main module's version: a tag, a pseudo-version, or
	// Devel.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from.
	Revision string `json:"revision"`
	// Time is the commit time, RFC 3339.
	Time string `json:"time"`
	// Modified reports uncommitted changes in the tree at build time.
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's Info.
var Get = sync.OnceValue(func() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: Devel, GoVersion: runtime.Version()}
	}
	return FromBuildInfo(bi)
})

// FromBuildInfo extracts an Info from what the go command stamped.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = Devel // test binaries and go run have no module version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is a one-line summary, for example
// "v1.2.0 (3f1c2a9d0b7e, 2026-03-01T10:00:00Z) go1.26.8"; a modified tree
// adds ", modified" inside the parentheses.
func (in Info) String() string {
	s := in.Version
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		s += " (" + rev
		if in.Time != "" {
			s += ", " + in.Time
		}
		if in.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return fmt.Sprintf("%s %s", s, in.GoVersion)
}
