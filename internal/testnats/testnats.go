// Package testnats starts real NATS servers in process for tests, with
// github.com/nats-io/nats-server/v2. Only test files import it: the relay
// binary links no NATS server (internal/determinism checks).
package testnats

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cosnim/relays/internal/testutil"
)

// readyWithin bounds how long a server may take to accept clients.
const readyWithin = 5 * time.Second

// Server is one running NATS server.
type Server struct {
	*server.Server
	Opts *server.Options
	t    testing.TB
}

// Options returns loopback options on a free port, without logs or signal
// handlers; change them before Start.
func Options(t testing.TB) *server.Options {
	return &server.Options{
		Host:   "127.0.0.1",
		Port:   testutil.FreePort(t),
		NoLog:  true,
		NoSigs: true,
	}
}

// Start runs a server with o and waits until it accepts clients; it is
// shut down at the end of the test.
func Start(t testing.TB, o *server.Options) *Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(readyWithin) {
		s.Shutdown()
		t.Fatalf("NATS server on port %d not ready within %v", o.Port, readyWithin)
	}
	ts := &Server{Server: s, Opts: o, t: t}
	t.Cleanup(ts.Stop)
	return ts
}

// URL is the server's client URL, nats://127.0.0.1:PORT (tls:// for a
// server with TLS).
func (s *Server) URL() string {
	scheme := "nats"
	if s.Opts.TLSConfig != nil {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.Opts.Port)
}

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts a new server with the same options (the same port).
func (s *Server) Restart() *Server {
	s.t.Helper()
	s.Stop()
	return Start(s.t, s.Opts)
}

// Cluster starts n servers routed to each other on loopback and waits
// until every route is up.
func Cluster(t testing.TB, n int) []*Server {
	t.Helper()
	opts := make([]*server.Options, n)
	routes := make([]string, n)
	for i := range opts {
		o := Options(t)
		o.ServerName = fmt.Sprintf("node-%d", i+1)
		o.Cluster = server.ClusterOpts{Name: "cosnim-test", Host: "127.0.0.1", Port: testutil.FreePort(t)}
		opts[i] = o
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", o.Cluster.Port)
	}
	servers := make([]*Server, n)
	for i, o := range opts {
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		servers[i] = Start(t, o)
	}
	testutil.WaitFor(t, 10*time.Second, "cluster routes", func() bool {
		for _, s := range servers {
			if s.NumRoutes() < n-1 {
				return false
			}
		}
		return true
	})
	return servers
}
