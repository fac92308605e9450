package client

import "testing"

// Drain alternates are relay URLs (PROTOCOL §4.13); bare HOST:PORT from
// older relays is still accepted.
func TestAlternateAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"tcps://relay-2.example:7421", "relay-2.example:7421", true},
		{"tcp://relay-2.example", "relay-2.example:7420", true},
		{"TCPS://[::1]:9/", "[::1]:9", true},
		{"tcp://[::1]", "[::1]:7420", true},
		{"relay-2.example:7420", "relay-2.example:7420", true},
		{"relay-2", "relay-2", true},
		{"http://relay-2.example", "", false},
		{"tcp://", "", false},
		{"tcp://h/path", "", false},
	} {
		got, ok := alternateAddr(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("alternateAddr(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
