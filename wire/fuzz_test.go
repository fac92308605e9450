package wire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// The seed corpora live in the top-level testdata/fuzz/<FuzzName>/, in the
// "go test fuzz v1" format. Go reads seeds only from the package's own
// testdata/fuzz, so each fuzz target reads ../testdata/fuzz/<FuzzName>/
// itself and adds the seeds with f.Add: they run as ordinary subtests in
// `go test ./wire` and seed the corpus under `go test -fuzz`. Crashers that
// the fuzzer finds land in wire/testdata/fuzz/<FuzzName>/; move them to
// testdata/fuzz/<FuzzName>/ to keep them. -update rewrites the seeds made
// from samples().
const corpusDir = "../testdata/fuzz"

// readCorpus returns the values of every seed file of a fuzz target.
func readCorpus(f *testing.F, name string) [][]any {
	dir := filepath.Join(corpusDir, name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatalf("reading seeds: %v", err)
	}
	var seeds [][]any
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		vals, err := parseCorpus(b)
		if err != nil {
			f.Fatalf("%s: %v", filepath.Join(dir, e.Name()), err)
		}
		seeds = append(seeds, vals)
	}
	if len(seeds) == 0 {
		f.Fatalf("no seeds in %s", dir)
	}
	return seeds
}

// parseCorpus parses the "go test fuzz v1" values this package uses:
// []byte("...") and byte('x') or uint8(n).
func parseCorpus(b []byte) ([]any, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, errors.New(`missing "go test fuzz v1" header`)
	}
	var vals []any
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		kind, arg, ok := strings.Cut(l, "(")
		if !ok || !strings.HasSuffix(arg, ")") {
			return nil, fmt.Errorf("bad line %q", l)
		}
		arg = arg[:len(arg)-1]
		switch kind {
		case "[]byte":
			s, err := strconv.Unquote(arg)
			if err != nil {
				return nil, fmt.Errorf("bad line %q: %v", l, err)
			}
			vals = append(vals, []byte(s))
		case "byte", "uint8":
			if strings.HasPrefix(arg, "'") {
				s, err := strconv.Unquote(arg)
				r, _ := utf8.DecodeRuneInString(s)
				if err != nil || r > 0xFF {
					return nil, fmt.Errorf("bad line %q", l)
				}
				vals = append(vals, byte(r))
				continue
			}
			n, err := strconv.ParseUint(arg, 0, 8)
			if err != nil {
				return nil, fmt.Errorf("bad line %q: %v", l, err)
			}
			vals = append(vals, byte(n))
		default:
			return nil, fmt.Errorf("unsupported type in %q", l)
		}
	}
	return vals, nil
}

// formatCorpus writes values in the "go test fuzz v1" format, as Go does.
func formatCorpus(vals ...any) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		}
	}
	return b.String()
}

// writeSeeds rewrites the generated seeds of a fuzz target under -update.
func writeSeeds(f *testing.F, name string, seeds map[string][]any) {
	if !*update {
		return
	}
	for file, vals := range seeds {
		p := filepath.Join(corpusDir, name, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(formatCorpus(vals...)), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}

const fuzzMax = 4096

// chunks splits data into pieces whose lengths cycle through cuts; a 0 cut
// gives an empty Feed followed by a 1-byte one.
func chunks(data, cuts []byte) [][]byte {
	var out [][]byte
	for i := 0; len(data) > 0; i++ {
		n := 1
		if len(cuts) > 0 {
			n = int(cuts[i%len(cuts)])
		}
		if n == 0 {
			out = append(out, data[:0])
			n = 1
		}
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// feedChunks feeds pieces to a Reader with Max max, checking that it never
// holds more than max, and returns the frames and the error.
func feedChunks(t *testing.T, max int, pieces [][]byte) (frames []rawFrame, left int, err error) {
	r := Reader{Max: max}
	var got []rawFrame
	for _, c := range pieces {
		err := r.Feed(c, collect(&got))
		if r.Buffered() > max || r.BufCapForTest() > max {
			t.Fatalf("Reader holds %d bytes (cap %d), over Max %d", r.Buffered(), r.BufCapForTest(), max)
		}
		if err != nil {
			return got, r.Buffered(), err
		}
	}
	return got, r.Buffered(), nil
}

func errClass(err error) error {
	for _, e := range []error{ErrFrameTooLarge, ErrEmptyFrame} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

func FuzzReader(f *testing.F) {
	stream := sampleStream()
	writeSeeds(f, "FuzzReader", map[string][]any{
		"samples-bytewise": {stream, []byte{1}},
		"samples-mixed":    {stream, []byte{3, 0, 17, 250, 4, 1}},
		"samples-whole":    {stream, []byte{255}},
	})
	for _, s := range readCorpus(f, "FuzzReader") {
		if len(s) != 2 {
			f.Fatalf("FuzzReader seed %v: want 2 values", s)
		}
		data, ok1 := s[0].([]byte)
		cuts, ok2 := s[1].([]byte)
		if !ok1 || !ok2 {
			f.Fatalf("FuzzReader seed %v: want []byte, []byte", s)
		}
		f.Add(data, cuts)
	}
	var sampleFrames []Frame
	for _, s := range samples() {
		sampleFrames = append(sampleFrames, s.f)
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		// Long inputs fed byte by byte make minimizing crawl; the short
		// ones find the same bugs.
		data = data[:min(len(data), 3*fuzzMax)]

		// Any bytes: chunked feeding yields what one-shot feeding does.
		want, wantLeft, wantErr := feedChunks(t, fuzzMax, [][]byte{data})
		got, gotLeft, gotErr := feedChunks(t, fuzzMax, chunks(data, cuts))
		if !slices.EqualFunc(want, got, func(a, b rawFrame) bool {
			return a.Type == b.Type && bytes.Equal(a.Payload, b.Payload)
		}) {
			t.Fatalf("chunked frames differ from one-shot (-want +got):\n%s", cmp.Diff(want, got))
		}
		if errClass(wantErr) != errClass(gotErr) {
			t.Fatalf("chunked error %v, one-shot error %v", gotErr, wantErr)
		}
		if wantErr == nil && wantLeft != gotLeft {
			t.Fatalf("chunked feed left %d bytes, one-shot %d", gotLeft, wantLeft)
		}
		for _, fr := range got {
			_, _ = Decode(fr.Type, fr.Payload) // must not panic
		}

		// Valid frames in random splits decode to what was sent.
		sent := sampleFrames[:len(sampleFrames):len(sampleFrames)]
		if len(data) > 0 {
			sent = append(sent, &Announce{Handle: 1, Entries: [][]byte{data}})
		}
		var valid []byte
		for _, fr := range sent {
			valid = Append(valid, fr)
		}
		raw, left, err := feedChunks(t, DefaultMaxFrameSize, chunks(valid, cuts))
		if err != nil || left != 0 || len(raw) != len(sent) {
			t.Fatalf("valid stream: %d frames, %d bytes left, error %v; want %d, 0, nil", len(raw), left, err, len(sent))
		}
		for i, fr := range raw {
			g, err := Decode(fr.Type, fr.Payload)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			// Encodings are canonical: equal bytes mean equal frames.
			// (cmp.Diff on every frame would slow fuzzing tenfold.)
			if !bytes.Equal(g.AppendPayload(nil), sent[i].AppendPayload(nil)) {
				t.Fatalf("frame %d (-sent +got):\n%s", i, diffFrames(sent[i], g))
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	seeds := map[string][]any{}
	for _, s := range samples() {
		seeds["sample-"+s.name] = []any{byte(s.f.FrameType()), s.f.AppendPayload(nil)}
	}
	writeSeeds(f, "FuzzDecode", seeds)
	for _, s := range readCorpus(f, "FuzzDecode") {
		if len(s) != 2 {
			f.Fatalf("FuzzDecode seed %v: want 2 values", s)
		}
		typ, ok1 := s[0].(byte)
		payload, ok2 := s[1].([]byte)
		if !ok1 || !ok2 {
			f.Fatalf("FuzzDecode seed %v: want byte, []byte", s)
		}
		f.Add(typ, payload)
	}
	used := map[Type][]byte{} // a payload of each type to decode over
	for _, s := range samples() {
		used[s.f.FrameType()] = s.f.AppendPayload(nil)
	}
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		ft := Type(typ)
		f1, err := Decode(ft, payload)
		if err != nil {
			var fe *FrameError
			switch {
			case New(ft) == nil && !errors.Is(err, ErrUnknownType):
				t.Fatalf("unknown type %v: got %v, want ErrUnknownType", ft, err)
			case New(ft) != nil && (!errors.As(err, &fe) || fe.Type != ft):
				t.Fatalf("%v: got %v, want *FrameError", ft, err)
			}
			return
		}
		if err := Validate(f1); err != nil {
			t.Fatalf("decoded frame fails Validate: %v", err)
		}
		enc := f1.AppendPayload(nil)
		if !bytes.Equal(enc, payload) {
			t.Fatalf("encoding is not canonical:\n got % x\nwant % x", enc, payload)
		}
		f2, err := Decode(ft, enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d := diffFrames(f1, f2); d != "" {
			t.Fatalf("decode(encode(decode(p))) differs (-first +second):\n%s", d)
		}
		reused := New(ft)
		_ = reused.DecodePayload(used[ft])
		if err := reused.DecodePayload(payload); err != nil {
			t.Fatalf("decode into a used frame: %v", err)
		}
		if d := diffFrames(f1, reused); d != "" {
			t.Fatalf("decode into a used frame differs (-fresh +reused):\n%s", d)
		}
	})
}
