package sim

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/cosnim/relays/relay"
)

func TestWriteSVG(t *testing.T) {
	// The first of seeds 1..10 whose run fails with catch-up broken.
	var trace bytes.Buffer
	for seed := uint64(1); ; seed++ {
		if seed > 10 {
			t.Fatal("no seed of 1..10 failed with broken catch-up; the picture would have no violation to show")
		}
		sc := Generate(seed)
		sc.Failpoints = []string{relay.FailEmptySyncReply}
		trace.Reset()
		if res := Run(sc, Options{Timeline: &trace}); len(res.Violations) > 0 {
			break
		}
	}
	var pic bytes.Buffer
	if err := WriteSVG(&pic, &trace); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(pic.Bytes()))
	counts := map[string]int{}
	var texts []string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			counts[el.Name.Local]++
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if counts["svg"] != 1 || counts["line"] < 100 || counts["circle"] == 0 {
		t.Fatalf("picture has %v elements; want an svg with delivery arrows and announce dots", counts)
	}
	all := strings.Join(texts, " ")
	for _, want := range []string{"relay", "c0-0", "VIOLATION", "heal"} {
		if !strings.Contains(all, want) {
			t.Errorf("picture does not show %q", want)
		}
	}
}
