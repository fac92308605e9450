package wire

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cosnim/relays/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the fuzz seeds in testdata/fuzz")

// goldenDir holds <name>.hex (the whole frame in hex, 32 bytes a line) and
// <name>.txt (the decoded frame, as dump prints it) for each sample.
const goldenDir = "../testdata/golden"

func hexLines(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		s.WriteString(hex.EncodeToString(b[:n]))
		s.WriteByte('\n')
		b = b[n:]
	}
	return s.String()
}

func TestGolden(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			hexPath := filepath.Join(goldenDir, s.name+".hex")
			txtPath := filepath.Join(goldenDir, s.name+".txt")
			enc := Append(nil, s.f)
			if *update {
				testutil.WriteFile(t, hexPath, hexLines(enc))
				testutil.WriteFile(t, txtPath, dump(s.f))
			}
			raw, err := os.ReadFile(hexPath)
			if err != nil {
				t.Fatalf("%v (run go test ./wire -run TestGolden -update)", err)
			}
			want, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
			if err != nil {
				t.Fatalf("%s: %v", hexPath, err)
			}
			if got := hexLines(enc); got != hexLines(want) {
				t.Errorf("encode = \n%s\nwant (%s)\n%s", got, hexPath, hexLines(want))
			}
			var frames []rawFrame
			var r Reader
			if err := r.Feed(want, collect(&frames)); err != nil || len(frames) != 1 || r.Buffered() != 0 {
				t.Fatalf("%s: Feed = %v, %d frames, %d bytes left; want one whole frame", hexPath, err, len(frames), r.Buffered())
			}
			f, err := Decode(frames[0].Type, frames[0].Payload)
			if err != nil {
				t.Fatalf("%s: Decode: %v", hexPath, err)
			}
			if d := diffFrames(s.f, f); d != "" {
				t.Errorf("decode(%s) mismatch (-want +got):\n%s", hexPath, d)
			}
			txt, err := os.ReadFile(txtPath)
			if err != nil {
				t.Fatal(err)
			}
			if got := dump(f); got != string(txt) {
				t.Errorf("dump(decode(%s)) =\n%s\nwant (%s)\n%s", hexPath, got, txtPath, txt)
			}
		})
	}
}
