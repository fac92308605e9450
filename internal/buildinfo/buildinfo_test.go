package buildinfo_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cosnim/relays/internal/buildinfo"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want buildinfo.Info
		str  string
	}{
		{
			name: "stamped",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/cosnim/relays", Version: "v1.2.0"},
				Settings: []debug.BuildSetting{
					{Key: "-buildmode", Value: "exe"},
					{Key: "vcs", Value: "git"},
					{Key: "vcs.revision", Value: "3f1c2a9d0b7e5566778899aabbccddeeff001122"},
					{Key: "vcs.time", Value: "2026-03-01T10:00:00Z"},
					{Key: "vcs.modified", Value: "true"},
				},
			},
			want: buildinfo.Info{Version: "v1.2.0", Revision: "3f1c2a9d0b7e5566778899aabbccddeeff001122",
				Time: "2026-03-01T10:00:00Z", Modified: true, GoVersion: "go1.26.8"},
			str: "v1.2.0 (3f1c2a9d0b7e, 2026-03-01T10:00:00Z, modified) go1.26.8",
		},
		{
			name: "clean",
			bi: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			want: buildinfo.Info{Version: "v1.2.0", Revision: "abc", GoVersion: "go1.26.8"},
			str:  "v1.2.0 (abc) go1.26.8",
		},
		{
			name: "unstamped",
			bi:   debug.BuildInfo{GoVersion: "go1.26.8"},
			want: buildinfo.Info{Version: buildinfo.Devel, GoVersion: "go1.26.8"},
			str:  "(devel) go1.26.8",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildinfo.FromBuildInfo(&tc.bi)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FromBuildInfo (-want +got):\n%s", diff)
			}
			if s := got.String(); s != tc.str {
				t.Errorf("String() = %q, want %q", s, tc.str)
			}
		})
	}
}

func TestGetReportsThisToolchain(t *testing.T) {
	if got := buildinfo.Get().GoVersion; got != runtime.Version() {
		t.Errorf("Get().GoVersion = %q, want %q", got, runtime.Version())
	}
}
