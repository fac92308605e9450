package wirepeer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// stream reads from r and records what is written.
type stream struct {
	io.Reader
	sent bytes.Buffer
}

func (s *stream) Write(b []byte) (int, error) { return s.sent.Write(b) }

func frames(fs ...wire.Frame) []byte {
	var b []byte
	for _, f := range fs {
		b = wire.Append(b, f)
	}
	return b
}

func TestNextAcrossSplitReads(t *testing.T) {
	want := []wire.Frame{&wire.Ping{Data: 1}, &wire.Ack{Handle: 2, Seq: 3}, &wire.Pong{Data: 4}}
	for _, tc := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"one byte at a time", iotest.OneByteReader},
		{"half reads", iotest.HalfReader},
		{"whole", func(r io.Reader) io.Reader { return r }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(&stream{Reader: tc.r(bytes.NewReader(frames(want...)))}, 7)
			for i, w := range want {
				got, err := p.NextFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !bytes.Equal(wire.Append(nil, got), wire.Append(nil, w)) {
					t.Fatalf("frame %d: got %+v, want %+v", i, got, w)
				}
			}
			if _, _, err := p.Next(); err != io.EOF {
				t.Fatalf("after the last frame: got %v, want io.EOF", err)
			}
		})
	}
}

// Payloads stay intact when several frames arrive in one read and later
// reads reuse the buffer.
func TestPayloadValidUntilNextCall(t *testing.T) {
	in := frames(&wire.Ping{Data: 10}, &wire.Ping{Data: 11}, &wire.Ping{Data: 12})
	p := New(&stream{Reader: bytes.NewReader(in)}, len(in)-3)
	for i := range 3 {
		_, payload, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		var f wire.Ping
		if err := f.DecodePayload(payload); err != nil || f.Data != uint64(10+i) {
			t.Fatalf("frame %d: got %+v (%v), want data %d", i, f, err, 10+i)
		}
	}
}

func TestFrameOverLimitFailsBeforeBuffering(t *testing.T) {
	// A header announcing 1 MiB, then nothing: the Peer must refuse at once
	// rather than wait for (and hold) the rest.
	// (A frame first: a first frame that large is no relay's, see
	// TestNextNamesAPeerThatIsNotARelay.)
	hdr := []byte{0, 0x10, 0, 0, byte(wire.TypeDeliver)}
	p := New(&stream{Reader: io.MultiReader(bytes.NewReader(frames(&wire.Pong{})), bytes.NewReader(hdr), blockReader{t})}, 0)
	if _, _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Next(); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("got %v, want wire.ErrFrameTooLarge", err)
	}
	if _, _, err := p.Next(); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("second Next: got %v, want the error again", err)
	}
}

// blockReader fails the test if read: the Peer read past what it needed.
type blockReader struct{ t *testing.T }

func (b blockReader) Read([]byte) (int, error) {
	b.t.Error("read past a frame header over the limit")
	return 0, io.EOF
}

func TestStreamEndingInsideAFrame(t *testing.T) {
	in := frames(&wire.Ping{Data: 1})
	p := New(&stream{Reader: bytes.NewReader(in[:len(in)-2])}, 0)
	if _, _, err := p.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReadErrorAfterFrames(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(frames(&wire.Pong{Data: 1})), iotest.ErrReader(boom))
	p := New(&stream{Reader: iotest.DataErrReader(r)}, 0)
	if _, err := p.NextFrame(); err != nil {
		t.Fatalf("the frame read with the error: %v", err)
	}
	if _, _, err := p.Next(); err != boom {
		t.Fatalf("got %v, want the read error", err)
	}
}

func TestNextFrameSkipsUnknownTypes(t *testing.T) {
	in := append([]byte{0, 0, 0, 2, 0x7f, 9}, frames(&wire.Pong{Data: 5})...)
	p := New(&stream{Reader: bytes.NewReader(in)}, 0)
	f, err := p.NextFrame()
	if pong, ok := f.(*wire.Pong); err != nil || !ok || pong.Data != 5 {
		t.Fatalf("got %+v, %v; want the Pong after the unknown frame", f, err)
	}
}

func TestHandshakeAnswersPingsAndTakesFrameLimit(t *testing.T) {
	w := &wire.Welcome{Version: 1, Epoch: 7, Limits: []wire.Limit{{Key: wire.LimitMaxFrameSize, Value: 4096}}}
	s := &stream{Reader: bytes.NewReader(frames(&wire.Ping{Data: 9}, w))}
	p := New(s, 0)
	got, err := p.Handshake("test")
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 7 || p.MaxFrame() != 4096 {
		t.Fatalf("got epoch %d, max frame %d; want 7, 4096", got.Epoch, p.MaxFrame())
	}
	if want := frames(HelloFrame("test"), &wire.Pong{Data: 9}); !bytes.Equal(s.sent.Bytes(), want) {
		t.Fatalf("sent %x, want Hello then Pong %x", s.sent.Bytes(), want)
	}
}

func TestExpectReportsErrorFrame(t *testing.T) {
	e := &wire.Error{Code: wire.CodeJoinDenied, Text: "no"}
	p := New(&stream{Reader: bytes.NewReader(frames(e))}, 0)
	var j wire.Joined
	err := p.Expect(wire.TypeJoined, &j)
	var re *RemoteError
	if !errors.As(err, &re) || re.Frame.Code != wire.CodeJoinDenied || re.Frame.Text != "no" {
		t.Fatalf("got %v, want a RemoteError for JoinDenied", err)
	}
}

func TestJoinSendsProof(t *testing.T) {
	k, err := roster.DeriveKeys([]byte("s"), "hub")
	if err != nil {
		t.Fatal(err)
	}
	w := &wire.Welcome{Nonce: [roster.JoinNonceSize]byte{1, 2, 3}}
	s := &stream{Reader: bytes.NewReader(frames(&wire.Joined{Handle: 4, Cached: 2}))}
	j, err := New(s, 0).Join(w, k, 4)
	if err != nil || j.Handle != 4 || j.Cached != 2 {
		t.Fatalf("got %+v, %v", j, err)
	}
	if want := frames(JoinFrame(k, 4, w.Nonce)); !bytes.Equal(s.sent.Bytes(), want) {
		t.Fatal("Join did not send the proof for the Welcome's nonce")
	}
}

func TestBoundUnblocksOnCancelAndLifts(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	p := New(a, 0)
	ctx, cancel := context.WithCancel(context.Background())
	lift := p.Bound(ctx)
	done := make(chan error, 1)
	go func() { _, _, err := p.Next(); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after the context ended")
	}
	lift()

	// A bound lifted before its context ends leaves no deadline behind.
	p = New(a, 0)
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	p.Bound(ctx)()
	go func() { time.Sleep(50 * time.Millisecond); b.Write(frames(&wire.Pong{})) }()
	if _, err := p.NextFrame(); err != nil {
		t.Fatalf("after lift: %v", err)
	}
}

func TestNextNamesAPeerThatIsNotARelay(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want wire.Foreign
	}{
		{wire.TLSRequiredNotice, wire.ForeignTLSRequired},
		{"HTTP/1.1 408 Request Timeout\r\n\r\n", wire.ForeignHTTP},
		{"\x15\x03\x01\x00\x02\x02\x28", wire.ForeignTLS},
	} {
		p := New(&stream{Reader: strings.NewReader(tc.in)}, 0)
		_, err := p.Handshake("test")
		var fe *wire.ForeignError
		if !errors.As(err, &fe) || fe.Kind != tc.want {
			t.Errorf("%q: got %v, want a ForeignError of kind %d", tc.in, err, tc.want)
		}
	}
}
