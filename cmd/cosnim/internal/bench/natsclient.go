package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cosnim/relays/internal/files"
)

// A NATS server is the yardstick of BENCHMARKS.md. The bench drives it
// through nats.go, the standard client (the backbone's too), with the
// same pacing, windows and latency histograms as the relay.

// natsTarget is a NATS server named by URL (nats:// or tls://).
type natsTarget struct {
	url  string
	addr string
	tls  *tls.Config
	pid  int
}

// NATS returns a target for the NATS server at rawURL; caFile, for a
// tls:// URL, is the certificate authority to trust; pid, when not 0, is
// the server's process, whose CPU and RSS are read from /proc.
func NATS(rawURL, caFile string, pid int) (Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bench: --nats %q: %w", rawURL, err)
	}
	t := &natsTarget{url: rawURL, addr: u.Host, pid: pid}
	switch u.Scheme {
	case "nats":
	case "tls":
		pool := x509.NewCertPool()
		if caFile != "" {
			pem, err := files.Read(caFile, files.MaxPEM)
			if err != nil {
				return nil, err
			}
			pool.AppendCertsFromPEM(pem)
		}
		host, _, _ := net.SplitHostPort(u.Host)
		t.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: host}
	default:
		return nil, fmt.Errorf("bench: --nats %q: want nats://HOST:PORT or tls://HOST:PORT", rawURL)
	}
	return t, nil
}

func (t *natsTarget) Addr() string                  { return t.addr }
func (t *natsTarget) ClientTLS() *tls.Config        { return t.tls }
func (t *natsTarget) Kind() string                  { return "nats" }
func (t *natsTarget) Restart(context.Context) error { return ErrNoRestart }
func (t *natsTarget) Close() error                  { return nil }
func (t *natsTarget) Usage() (Usage, bool) {
	if t.pid == 0 {
		return Usage{}, false
	}
	u, err := procUsage(t.pid)
	return u, err == nil
}

// natsPending is how far a bench subscriber may fall behind before
// nats.go drops its messages: the server's own slow-consumer allowance.
const natsPending = 64 << 20

// natsConn is one NATS client connection and, for a subscriber, its
// subscription, read by one goroutine.
type natsConn struct {
	nc  *nats.Conn
	sub *nats.Subscription
}

// dialNATS connects within timeout. Echo is off, so a client does not
// receive its own publishes (as a relay never sends an announcer its own
// entries), and a lost connection stays lost: the run fails.
func dialNATS(t *natsTarget, timeout time.Duration) (*natsConn, error) {
	opts := []nats.Option{nats.Name("cosnim-bench"), nats.NoEcho(), nats.NoReconnect(), nats.Timeout(timeout)}
	if t.tls != nil {
		opts = append(opts, nats.Secure(t.tls))
	}
	nc, err := nats.Connect(t.url, opts...)
	if err != nil {
		return nil, err
	}
	return &natsConn{nc: nc}, nil
}

// subscribe subscribes to subject and waits until the server has it.
func (c *natsConn) subscribe(subject string) error {
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(-1, natsPending); err != nil {
		return err
	}
	c.sub = sub
	return c.nc.Flush()
}

// publish queues one message; nats.go coalesces what is queued into its
// writes.
func (c *natsConn) publish(subject string, payload []byte) error {
	return c.nc.Publish(subject, payload)
}

// next returns the payload of the next message: an error once the
// connection is closed, or when messages were dropped for falling behind.
func (c *natsConn) next() ([]byte, error) {
	m, err := c.sub.NextMsgWithContext(context.Background())
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

func (c *natsConn) Close() error {
	c.nc.Close()
	return nil
}

var errNATSScenario = errors.New("bench: against NATS only the fanout and channels scenarios run")
