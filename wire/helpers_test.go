package wire

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/cosnim/relays/roster"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// equateFrames compares decoded frames: nil and empty slices are equal,
// since DecodePayload reuses slices.
var equateFrames = cmpopts.EquateEmpty()

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func id(b byte) roster.ID {
	var x roster.ID
	for i := range x {
		x[i] = b ^ byte(i)
	}
	return x
}

type namedFrame struct {
	name string
	f    Frame
}

// samples returns one frame of every type, each field set to a value that
// differs from its zero value. Their names name the golden files.
func samples() []namedFrame {
	var nonce [roster.JoinNonceSize]byte
	copy(nonce[:], seq(len(nonce), 0xA0))
	join := &Join{Handle: 7}
	copy(join.Channel[:], seq(32, 0x10))
	copy(join.Pub[:], seq(32, 0x40))
	copy(join.Sig[:], seq(64, 0x80))
	var sum [16]byte
	copy(sum[:], seq(16, 0xF0))
	return []namedFrame{
		{"hello", &Hello{MinVersion: 1, MaxVersion: 3, Agent: "cosnim/1.2.3 (linux)"}},
		{"welcome", &Welcome{Version: 1, Epoch: 0x0123456789ABCDEF, Nonce: nonce, Limits: []Limit{
			{LimitMaxFrameSize, DefaultMaxFrameSize}, {LimitHeartbeatMillis, 15000}, {LimitKey(999), 1 << 40},
		}}},
		{"join", join},
		{"joined", &Joined{Handle: 7, Cached: 100000, Flags: JoinedComplete}},
		{"leave", &Leave{Handle: 7}},
		{"announce", &Announce{Handle: 7, Seq: 42, Entries: [][]byte{seq(3, 1), seq(40, 0x30)}}},
		{"ack", &Ack{Handle: 7, Seq: 42}},
		{"deliver", &Deliver{Handle: 9, Entries: [][]byte{seq(1, 0xEE), seq(28, 0x20)}}},
		{"sync", &Sync{Handle: 7, Session: 3, Msg: roster.SyncMsg{
			Ranges: []roster.Range{
				{Node: roster.Node{Depth: 0}, Mode: roster.ModeFingerprint, FP: roster.Fingerprint{Count: 300, Sum: sum}},
				{Node: roster.Node{Depth: 3, Prefix: 0xABC}, Mode: roster.ModeIDs, IDs: []roster.ID{id(0xAB), id(0xAC)}},
				{Node: roster.Node{Depth: 16, Prefix: 0xFEDCBA9876543210}, Mode: roster.ModeIDs},
			},
			Want: []roster.ID{id(0x55)},
		}}},
		{"delta", &Delta{Handle: 7, Session: 3, Entries: [][]byte{seq(5, 0x60)}}},
		{"ping", &Ping{Data: 0xDEADBEEF01020304}},
		{"pong", &Pong{Data: 0xDEADBEEF01020304}},
		{"drain", &Drain{AfterMillis: 5000, JitterMillis: 2000, Alternates: []string{"tcps://relay2.example.net", "tcp://10.0.0.2:7420"}}},
		{"error", &Error{Code: CodeResync, Handle: 7, Flags: 0, Text: "pending entries dropped: sync again"}},
	}
}

// sampleStream returns every sample frame, encoded one after another.
func sampleStream() []byte {
	var b []byte
	for _, s := range samples() {
		b = Append(b, s.f)
	}
	return b
}

type rawFrame struct {
	Type    Type
	Payload []byte
}

// collect returns a Feed callback that copies each frame into *out.
func collect(out *[]rawFrame) func(Type, []byte) error {
	return func(t Type, p []byte) error {
		*out = append(*out, rawFrame{t, bytes.Clone(p)})
		return nil
	}
}

func diffFrames(want, got Frame) string { return cmp.Diff(want, got, equateFrames) }

// dump formats a frame as text: its type, then one "path value" line per
// field, byte strings in hex, lists preceded by their length.
func dump(f Frame) string {
	var b strings.Builder
	fmt.Fprintf(&b, "type %v\n", f.FrameType())
	dumpValue(&b, "", reflect.ValueOf(f).Elem())
	return b.String()
}

func dumpValue(b *strings.Builder, path string, v reflect.Value) {
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch {
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			dumpValue(b, join(v.Type().Field(i).Name), v.Field(i))
		}
	case (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) && v.Type().Elem().Kind() == reflect.Uint8:
		var raw []byte
		if v.Kind() == reflect.Array {
			raw = make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(raw), v)
		} else {
			raw = v.Bytes()
		}
		fmt.Fprintf(b, "%s %x\n", path, raw)
	case v.Kind() == reflect.Slice:
		fmt.Fprintf(b, "%s len %d\n", path, v.Len())
		for i := range v.Len() {
			dumpValue(b, fmt.Sprintf("%s[%d]", path, i), v.Index(i))
		}
	case v.Kind() == reflect.String:
		fmt.Fprintf(b, "%s %q\n", path, v.String())
	default:
		if s, ok := v.Interface().(fmt.Stringer); ok {
			fmt.Fprintf(b, "%s %d (%v)\n", path, v.Interface(), s)
		} else if strings.HasSuffix(path, ".Prefix") {
			fmt.Fprintf(b, "%s %#x\n", path, v.Interface())
		} else {
			fmt.Fprintf(b, "%s %d\n", path, v.Interface())
		}
	}
}
