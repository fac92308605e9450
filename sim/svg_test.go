package sim

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestWriteSVG(t *testing.T) {
	sc := Generate(5)
	sc.Failpoints = []string{"relay/empty-sync-reply"}
	var trace bytes.Buffer
	res := Run(sc, Options{Timeline: &trace})
	if len(res.Violations) == 0 {
		t.Fatal("seed 5 with broken catch-up found no violation; the picture would have none to show")
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
