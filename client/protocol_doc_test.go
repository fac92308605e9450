package client

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// PROTOCOL §8.3 quotes MaxRejected.
func TestProtocolQuotesMaxRejected(t *testing.T) {
	b, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("the last %d per channel (`client.MaxRejected`)", MaxRejected); !strings.Contains(string(b), want) {
		t.Errorf("PROTOCOL.md does not say %q", want)
	}
}
