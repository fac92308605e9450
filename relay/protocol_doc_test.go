package relay

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/cosnim/relays/roster"
)

// protocolDoc is PROTOCOL.md.
func protocolDoc(t *testing.T) string {
	b, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// PROTOCOL.md quotes constants of the code; they must agree.
func TestProtocolQuotesConstants(t *testing.T) {
	doc := protocolDoc(t)
	for _, want := range []string{
		fmt.Sprintf("**%d or fewer** IDs", roster.FewIDs),                                      // §10
		fmt.Sprintf("the Go relay: %d channels, `relay.ForgottenCapacity`", ForgottenCapacity), // §4.4
		"burst twice `max-channels`",                                                           // §6.3, §11: JoinBurst
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("PROTOCOL.md does not say %q", want)
		}
	}
	if c := (Config{MaxChannels: 64}); c.JoinBurst() != 2*c.MaxChannels {
		t.Errorf("JoinBurst %d, PROTOCOL.md says twice max-channels", c.JoinBurst())
	}
}

// One rule for empty entries (PROTOCOL §3.6): they make the frame
// malformed; no passage calls them a non-fatal bad entry.
func TestProtocolEmptyEntryOneRule(t *testing.T) {
	doc := protocolDoc(t)
	row := regexp.MustCompile(`(?m)^\| 17 \| bad entry \|.*$`).FindString(doc)
	if row == "" || strings.Contains(row, "empty or") || !strings.Contains(row, "empty entry is malformed") {
		t.Errorf("the bad entry row says %q; want entries over max-entry-size, and empty ones malformed", row)
	}
	for _, para := range strings.Split(doc, "\n\n") {
		if strings.Contains(para, "1..`max-entry-size`") {
			t.Errorf("a passage still allows only 1..max-entry-size as the bad-entry rule:\n%s", para)
		}
	}
	if !strings.Contains(doc, "an empty entry makes its\n  frame malformed") {
		t.Error("§3.6 does not say an empty entry makes its frame malformed")
	}
}
