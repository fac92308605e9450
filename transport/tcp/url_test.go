package tcp

import (
	"errors"
	"testing"
)

type urlCase struct {
	in, scheme, hostport string
	wantErr              bool
}

// testParse checks parse (named name) on each case: a good URL gives its
// scheme and host:port, a bad one a *URLError wrapping ErrBadURL.
func testParse(t *testing.T, name string, parse func(string) (string, string, error), tests []urlCase) {
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			scheme, hp, err := parse(tt.in)
			if tt.wantErr {
				var ue *URLError
				if !errors.As(err, &ue) || !errors.Is(err, ErrBadURL) || ue.URL != tt.in || ue.Reason == "" {
					t.Errorf("%s(%q) error = %#v, want a *URLError wrapping ErrBadURL", name, tt.in, err)
				}
				return
			}
			if err != nil || scheme != tt.scheme || hp != tt.hostport {
				t.Errorf("%s(%q) = %q, %q, %v; want %q, %q", name, tt.in, scheme, hp, err, tt.scheme, tt.hostport)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	testParse(t, "ParseURL", ParseURL, []urlCase{
		{in: "tcp://relay.example", scheme: "tcp", hostport: "relay.example:7420"},
		{in: "tcps://relay.example:9000", scheme: "tcps", hostport: "relay.example:9000"},
		{in: "TCPS://127.0.0.1/", scheme: "tcps", hostport: "127.0.0.1:7420"},
		{in: "tcp://[::1]:7421", scheme: "tcp", hostport: "[::1]:7421"},
		{in: "tcp://[::1]", scheme: "tcp", hostport: "[::1]:7420"},
		{in: "relay.example:7420", wantErr: true},
		{in: "http://relay.example", wantErr: true},
		{in: "tcp://", wantErr: true},
		{in: "tcp://host:0", wantErr: true},
		{in: "tcp://host:70000", wantErr: true},
		{in: "tcp://host:", wantErr: true},
		{in: "tcp://host/path", wantErr: true},
		{in: "tcp://host?x=1", wantErr: true},
		{in: "tcp://user@host", wantErr: true},
	})
}

func TestParseListenURL(t *testing.T) {
	testParse(t, "ParseListenURL", ParseListenURL, []urlCase{
		{in: "tcp://:7421", scheme: "tcp", hostport: ":7421"},
		{in: "tcps://", scheme: "tcps", hostport: ":7420"},
		{in: "tcp://127.0.0.1:0", scheme: "tcp", hostport: "127.0.0.1:0"},
		{in: "tcp://[::]:07421", scheme: "tcp", hostport: "[::]:7421"},
		{in: ":7420", wantErr: true},
		{in: "tcp://:", wantErr: true},
		{in: "tcp://:-1", wantErr: true},
		{in: "tcp://:65536", wantErr: true},
		{in: "tcp://h#frag", wantErr: true},
		{in: "tcp://h?", wantErr: true},
	})
}
