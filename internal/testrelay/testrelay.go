package testrelay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cosnim/relays/relay/relayserver"
)

// stopTimeout bounds how long Stop waits for Run to return; generous, since
// no test asserts timing.
const stopTimeout = 20 * time.Second

// Server is a relayserver.Server running in the background.
type Server struct {
	*relayserver.Server
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	result error // Run's result, set by the first Stop
}

// Start builds a server from cfg (Addr "" means 127.0.0.1:0), runs it and
// returns once it listens; it fails the test if New or Run fail first. The
// server stops at the end of the test unless Stop was called before.
func Start(t testing.TB, cfg relayserver.Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	srv, err := relayserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Server: srv, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-s.done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop cancels Run's context and returns what Run returned; later calls
// wait for the first and return the same.
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.result = <-s.done:
		case <-time.After(stopTimeout):
			s.t.Fatal("Run did not return")
		}
	})
	return s.result
}
