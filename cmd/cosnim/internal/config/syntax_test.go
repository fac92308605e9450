package config

import (
	"errors"
	"testing"
)

func TestSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
		msg        string
	}{
		{"misindented key", "relays:\n  local:\n    client:\n      url: tcp://h:1\n     server:\n      url: tcp://h:1\n", 5, "did not find expected key"},
		{"tab", "relays:\n  a:\n\tb: 1\n", 3, "found character that cannot start any token"},
		{"open flow", "relays: [\n", 1, "did not find expected node content"},
		{"bad flow item", "relays:\n  local:\n    client: {url: tcp://x:1,\n      b: [1, 2}\n", 4, "did not find expected ',' or ']'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "x.yaml")
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 || !errors.Is(es[0], ErrSyntax) {
				t.Fatalf("got %v, want one syntax error", err)
			}
			if es[0].Line != tc.line || es[0].Err.Error() != tc.msg {
				t.Errorf("got line %d %q, want line %d %q", es[0].Line, es[0].Err.Error(), tc.line, tc.msg)
			}
		})
	}
}
