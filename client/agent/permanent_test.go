package agent_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/client/agent"
	"github.com/cosnim/relays/internal/testrelay"
	"github.com/cosnim/relays/relay/relayserver"
	"github.com/cosnim/relays/wire"
)

// An Agent pointed at an HTTP server fails its waits at once with
// ErrPermanent, naming what it reached, instead of retrying into the
// context's deadline.
func TestWaitEndsOnPermanentFailure(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	// A Hello holds no newline: net/http answers it (408) only once its
	// header read times out. Make that quick.
	srv.Config.ReadHeaderTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	a := newAgent(t, strings.TrimPrefix(srv.URL, "http://"), 0)
	defer a.Close()
	if err := a.Join("h"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	start := time.Now()
	err := a.WaitCaughtUp(ctx, "h")
	if !errors.Is(err, agent.ErrPermanent) || !errors.Is(err, wire.ErrNotRelay) {
		t.Fatalf("WaitCaughtUp = %v, want ErrPermanent wrapping wire.ErrNotRelay", err)
	}
	if d := time.Since(start); d > apiTimeout/2 {
		t.Fatalf("took %v", d)
	}
	if !errors.Is(a.Permanent(), agent.ErrPermanent) {
		t.Fatalf("Permanent() = %v", a.Permanent())
	}
	if _, err := a.AnnounceAllAndWait(ctx, "h", [][]byte{[]byte("x")}); !errors.Is(err, agent.ErrPermanent) {
		t.Fatalf("AnnounceAllAndWait = %v, want ErrPermanent", err)
	}
}

func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&wire.ForeignError{Kind: wire.ForeignHTTP}, true},
		{fmt.Errorf("dial: %w", &agent.RefusedError{Code: wire.CodeVersion}), true},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), true},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, true},
		{context.DeadlineExceeded, false},
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := agent.IsPermanent(tc.err); got != tc.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// AnnounceAllAndWait sends many references in few frames and returns once
// the relay acknowledged them all; another client learns every one.
func TestAnnounceAllAndWait(t *testing.T) {
	s := testrelay.Start(t, relayserver.Config{})
	addr := s.Addr().String()
	a := newAgent(t, addr, 0)
	defer a.Close()
	if err := a.Join("h"); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	refs := make([][]byte, n)
	for i := range refs {
		refs[i] = fmt.Appendf(nil, "capsule-%05d", i)
	}
	ctx := apiCtx(t)
	acked, err := a.AnnounceAllAndWait(ctx, "h", refs)
	if err != nil || acked != n {
		t.Fatalf("AnnounceAllAndWait = %d, %v; want %d, nil", acked, err, n)
	}
	st, _, _, ok := s.Stats()
	if !ok {
		t.Fatal("no relay stats")
	}
	if frames := st.FramesIn[wire.TypeAnnounce]; frames == 0 || frames > n/50 {
		t.Fatalf("%d Announce frames for %d references, want them batched", frames, n)
	}
	b := newAgent(t, addr, 0)
	defer b.Close()
	if err := b.Join("h"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitCaughtUp(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Known("h"); len(got) != n {
		t.Fatalf("another client knows %d references, want %d", len(got), n)
	}
}

// A relay that refuses the client's protocol versions (an Error frame
// with CodeVersion) is a permanent failure: the waits end with a
// RefusedError.
func TestWaitEndsOnVersionRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 512)) // the Hello
			c.Write(wire.Append(nil, &wire.Error{Code: wire.CodeVersion, Flags: wire.ErrorFatal, Text: "no common version"}))
			c.Close()
		}
	}()
	a := newAgent(t, ln.Addr().String(), 0)
	defer a.Close()
	if err := a.Join("h"); err != nil {
		t.Fatal(err)
	}
	err = a.WaitConnected(apiCtx(t))
	var re *agent.RefusedError
	if !errors.Is(err, agent.ErrPermanent) || !errors.As(err, &re) || re.Code != wire.CodeVersion {
		t.Fatalf("WaitConnected = %v, want ErrPermanent with a RefusedError for CodeVersion", err)
	}
}
