package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"

	"github.com/cosnim/relays/internal/files"
)

// A NATS server is the yardstick of BENCHMARKS.md. The bench speaks the
// few verbs of the NATS client protocol it needs (CONNECT, SUB, PUB, MSG,
// PING, PONG) itself, so that both servers are driven by the same load
// generator, with the same pacing and latency histograms, and the cosnim
// binary depends on no NATS module.

// natsTarget is a NATS server named by URL (nats:// or tls://).
type natsTarget struct {
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
	t := &natsTarget{addr: u.Host, pid: pid}
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

// natsConn is one NATS client connection. Reads belong to one goroutine;
// writes are serialised by wmu.
type natsConn struct {
	nc  net.Conn
	r   *bufio.Reader
	wmu sync.Mutex
	out []byte
}

// dialNATS connects and completes CONNECT; echo is off, so a client does
// not receive its own publishes (as a relay never sends an announcer its
// own entries).
func dialNATS(ctx context.Context, t *natsTarget, readBuf int) (*natsConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c := &natsConn{nc: nc, r: bufio.NewReaderSize(nc, readBuf)}
	line, err := c.r.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("INFO ")) {
		nc.Close()
		return nil, fmt.Errorf("bench: no INFO from the NATS server: %q %v", line, err)
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		c.nc, c.r = tc, bufio.NewReaderSize(tc, readBuf)
	}
	hello, _ := json.Marshal(map[string]any{
		"verbose": false, "pedantic": false, "echo": false, "tls_required": t.tls != nil,
		"name": "cosnim-bench", "lang": "go", "version": "0", "protocol": 1,
	})
	if err := c.write(fmt.Appendf(nil, "CONNECT %s\r\nPING\r\n", hello)); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.awaitPong(); err != nil {
		c.Close()
		return nil, err
	}
	c.nc.SetDeadline(timeZero)
	return c, nil
}

// subscribe subscribes to subject and waits until the server has it.
func (c *natsConn) subscribe(subject string) error {
	if err := c.write(fmt.Appendf(nil, "SUB %s 1\r\nPING\r\n", subject)); err != nil {
		return err
	}
	return c.awaitPong()
}

func (c *natsConn) awaitPong() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("PONG")):
			return nil
		case bytes.HasPrefix(line, []byte("-ERR")):
			return fmt.Errorf("bench: NATS server: %s", bytes.TrimSpace(line))
		}
	}
}

// appendPub appends a PUB of payload to subject onto b.
func appendPub(b []byte, subject string, payload []byte) []byte {
	b = append(b, "PUB "...)
	b = append(b, subject...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, "\r\n"...)
	b = append(b, payload...)
	return append(b, "\r\n"...)
}

func (c *natsConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// next returns the payload of the next MSG, valid until the next call,
// answering the server's PINGs on the way.
func (c *natsConn) next() ([]byte, error) {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("MSG ")):
			f := bytes.Fields(line)
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bench: bad NATS MSG line %q", line)
			}
			if n+2 > c.r.Size() {
				c.out = append(c.out[:0], make([]byte, n+2)...)
				if _, err := io.ReadFull(c.r, c.out); err != nil {
					return nil, err
				}
				return c.out[:n], nil
			}
			p, err := c.r.Peek(n + 2)
			if err != nil {
				return nil, err
			}
			c.r.Discard(n + 2)
			return p[:n], nil
		case bytes.HasPrefix(line, []byte("PING")):
			if err := c.write([]byte("PONG\r\n")); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(line, []byte("-ERR")):
			return nil, fmt.Errorf("bench: NATS server: %s", bytes.TrimSpace(line))
		}
	}
}

func (c *natsConn) Close() error { return c.nc.Close() }

var errNATSScenario = errors.New("bench: against NATS only the fanout and channels scenarios run")
