package conformance

import (
	"os"
	"strings"
	"testing"
)

// Every requirement the kit checks is a numbered item of PROTOCOL.md, and
// the notice it expects from a TLS port is the one the document quotes.
func TestChecksCiteNumberedRequirements(t *testing.T) {
	b, err := os.ReadFile("../../../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	all := append(append(append([]check(nil), checks...), slowChecks...), drainChecks...)
	for _, c := range all {
		if !strings.Contains(doc, "**"+c.id+" ") && !strings.Contains(doc, "**"+c.id+"**") {
			t.Errorf("%s (%s) is not a numbered requirement of PROTOCOL.md", c.id, c.what)
		}
	}
	if !strings.Contains(doc, "`"+strings.TrimSuffix(tlsNotice, "\n")+"` and `\\n`") {
		t.Errorf("PROTOCOL.md §2.2 does not quote the notice %q", tlsNotice)
	}
}
