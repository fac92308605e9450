package hostile

import (
	"bytes"
	"context"
	"crypto/tls"
	bin "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Attacks on what stands before a session: sockets that never speak,
// replayed ClientHellos, joins with bad proofs, and /status polling. The
// attackers dial from 127.0.0.2 and up (all of 127.0.0.0/8 is loopback on
// Linux), honest clients from 127.0.0.1, so that per-source limits see
// them as the different hosts they would be.

// cpuTime is process pid's CPU time so far (user and system), from
// /proc; false where unknown.
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which ends at the last ')': state is
	// the first, utime and stime the 12th and 13th, in clock ticks (100/s).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond, true
}

// cpuNow is cpuTime, 0 where unknown.
func cpuNow(pid int) time.Duration {
	d, _ := cpuTime(pid)
	return d
}

// cpuMeter measures the relay's CPU use, and the test process's (the
// attackers' and the honest clients'), from now until its call.
func (tg *target) cpuMeter() func() string {
	relay, self := tg.cmd.Process.Pid, os.Getpid()
	r0, s0, t0 := cpuNow(relay), cpuNow(self), time.Now()
	return func() string {
		secs := time.Since(t0).Seconds()
		return fmt.Sprintf("relay CPU %.0f%%, test process CPU %.0f%%",
			100*(cpuNow(relay)-r0).Seconds()/secs, 100*(cpuNow(self)-s0).Seconds()/secs)
	}
}

// full reports whether this is the long run (make hostile), which attacks
// at the sizes; the short run keeps CI cheap.
func full() bool { return *duration >= 10*time.Second }

// connectTimeout bounds one honest connect, as a client's would.
const connectTimeout = 5 * time.Second

// dialerFrom dials from a loopback source address.
func dialerFrom(src string, timeout time.Duration) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: timeout}
}

// attackerSource is the source address of attacker i of n sources.
func attackerSource(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i) }

// pct returns the q-quantile of l's durations (0 when there are none).
func pct(l *latencies, q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.d)
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*q))]
}

// successRate is the share of l's probes that succeeded, in percent.
func successRate(l *latencies) (ok, all int, rate float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, all = len(l.d), len(l.d)+l.failed
	if all == 0 {
		return 0, 0, 0
	}
	return ok, all, 100 * float64(ok) / float64(all)
}

// probe runs try every `every` for d, each in its own goroutine (so a
// slow one does not hold back the next), and collects the outcomes.
func probe(d, every time.Duration, try func() (time.Duration, error)) *latencies {
	l := &latencies{}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		wg.Go(func() {
			if took, err := try(); err != nil {
				l.fail()
			} else {
				l.add(took)
			}
		})
		time.Sleep(every)
	}
	wg.Wait()
	return l
}

// connect is one honest TLS connect from 127.0.0.1: TCP, the TLS
// handshake, then Hello and Welcome.
func (tg *target) connect() (time.Duration, error) {
	start := time.Now()
	c, err := tls.DialWithDialer(dialerFrom("127.0.0.1", connectTimeout), "tcp", tg.addr, tg.client)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(connectTimeout))
	if _, err := wirepeer.New(c, 0).Handshake("honest"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// reportGate logs honest figures quiet and under attack, and checks the
// success rate always and latency targets under -hostile.targets:
// under's p99 at most p99x times quiet's (0: no latency target).
func reportGate(t *testing.T, attack, what string, tg *target, quiet, under *latencies, minRate, p99x float64, extra string) {
	t.Helper()
	ok, all, rate := successRate(under)
	qok, qall, _ := successRate(quiet)
	t.Logf("%s: honest %s %d/%d ok (%.1f%%) under attack, p50 %v p99 %v; quiet %d/%d, p50 %v p99 %v; relay peak RSS %.1f MiB; %s",
		attack, what, ok, all, rate, pct(under, 0.5), pct(under, 0.99), qok, qall, pct(quiet, 0.5), pct(quiet, 0.99),
		float64(tg.peakRSS(t))/(1<<20), extra)
	if all == 0 || rate < minRate {
		t.Errorf("%s: %.1f%% of honest %s succeeded, want at least %.0f%%", attack, rate, what, minRate)
	}
	if *targets && p99x > 0 && pct(under, 0.99) > time.Duration(p99x*float64(pct(quiet, 0.99))) {
		t.Errorf("%s: honest %s p99 %v over %.0f× its quiet %v", attack, what, pct(under, 0.99), p99x, pct(quiet, 0.99))
	}
}

// An attacker holds 256 TCP connections to a TLS port that never send a
// byte, and re-opens each one the relay closes. Honest TLS connects must
// succeed (target: ≥ 99 %).
func TestSilentSockets(t *testing.T) {
	tt := startRelay(t, relayOptions{tls: true, logLevel: "error"})
	quiet := probe(time.Second, 50*time.Millisecond, tt.connect)
	const silent, sources = 256, 4
	ctx, cancel := context.WithCancel(context.Background())
	var opened atomic.Int64
	var wg sync.WaitGroup
	for i := range silent {
		wg.Go(func() {
			d := dialerFrom(attackerSource(i%sources), time.Second)
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", tt.addr)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				opened.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				io.Copy(io.Discard, c) // until the relay closes it
				stop()
				c.Close()
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // the attacker holds its sockets
	start, before, cpu := time.Now(), opened.Load(), tt.cpuMeter()
	under := probe(*duration, 50*time.Millisecond, tt.connect)
	secs, used := time.Since(start).Seconds(), cpu()
	cancel()
	wg.Wait()
	reportGate(t, "silent sockets", "TLS connects", tt, quiet, under, 99, 0,
		fmt.Sprintf("attacker re-opened %.0f connections/s from %d sources; %s", float64(opened.Load()-before)/secs, sources, used))
}

// replayClientHello returns the first record a TLS client sends to tt, a
// ClientHello, captured without a relay: replaying it costs the attacker
// no crypto and the relay a key exchange and a signature.
func replayClientHello(t *testing.T, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, cfg.Clone()).Handshake()
		a.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+int(bin.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(b, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

// 50 connections replay one recorded ClientHello as fast as the relay
// answers, each reading the server's flight and starting again. Honest TLS
// connects must all succeed, their p99 within 2× its quiet figure
// (-hostile.targets).
func TestReplayedClientHello(t *testing.T) {
	tt := startRelay(t, relayOptions{tls: true, logLevel: "error"})
	hello := replayClientHello(t, tt.client)
	quiet := probe(2*time.Second, 20*time.Millisecond, tt.connect)
	ctx, cancel := context.WithCancel(context.Background())
	var flights, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			d := dialerFrom(attackerSource(0), time.Second)
			buf := make([]byte, 16<<10)
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", tt.addr)
				if err != nil {
					continue
				}
				c.SetDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(hello); err == nil {
					if n, _ := c.Read(buf); n > 0 {
						flights.Add(1)
					} else {
						refused.Add(1)
					}
				}
				c.Close()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	start, before, cpu := time.Now(), flights.Load(), tt.cpuMeter()
	under := probe(*duration, 20*time.Millisecond, tt.connect)
	rate, used := float64(flights.Load()-before)/time.Since(start).Seconds(), cpu()
	cancel()
	wg.Wait()
	reportGate(t, "replayed ClientHello", "TLS connects", tt, quiet, under, 99, 2,
		fmt.Sprintf("%.0f server flights/s to the attacker, %d replays refused; %s", rate, refused.Load(), used))
}

// Attackers on many connections send joins with real signatures over the
// wrong nonce, as fast as join_rate lets them, reconnecting when closed.
// Honest joins must all succeed, p99 ≤ 50 ms (-hostile.targets).
func TestBadJoinFlood(t *testing.T) {
	tg := startRelay(t, relayOptions{})
	conns := 100
	if full() {
		conns = 1000
	}
	k := selfMade(t, "bad joins")
	var wrong [roster.JoinNonceSize]byte
	pub, sig := k.JoinProof(wrong) // a real signature of the wrong nonce
	honestKeys := selfMade(t, "honest joins")
	join := func() (time.Duration, error) {
		nc, err := net.DialTimeout("tcp", tg.addr, connectTimeout)
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(connectTimeout))
		p := wirepeer.New(nc, 0)
		w, err := p.Handshake("honest")
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := p.Join(w, honestKeys, 1); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	quiet := probe(time.Second, 20*time.Millisecond, join)
	ctx, cancel := context.WithCancel(context.Background())
	var sent, closedByRelay atomic.Int64
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			d := dialerFrom(attackerSource(i%4), time.Second)
			for ctx.Err() == nil {
				if badJoins(ctx, d, tg.addr, pub, sig, k.ID(), &sent) {
					closedByRelay.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	cpu := tg.cpuMeter()
	under := probe(*duration, 20*time.Millisecond, join)
	used := cpu()
	cancel()
	wg.Wait()
	reportGate(t, "bad join flood", "joins", tg, quiet, under, 99, 0,
		fmt.Sprintf("%d attacker connections sent %d bad joins, closed by the relay %d times; %s",
			conns, sent.Load(), closedByRelay.Load(), used))
	if *targets && pct(under, 0.99) > 50*time.Millisecond {
		t.Errorf("bad join flood: honest join p99 %v over the 50ms target", pct(under, 0.99))
	}
}

// badJoins runs one attacker connection: a burst of max_channels joins,
// then one each 16 ms (under join_rate), until the relay closes it (true)
// or ctx ends.
func badJoins(ctx context.Context, d *net.Dialer, addr string, pub [roster.PublicKeySize]byte, sig [roster.SignatureSize]byte, ch roster.ChannelID, sent *atomic.Int64) (closed bool) {
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return false
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	p := wirepeer.New(nc, 0)
	if _, err := p.Handshake("attacker"); err != nil {
		return false
	}
	gone := make(chan struct{})
	go func() { // read and drop the denials, until the relay closes
		defer close(gone)
		io.Copy(io.Discard, nc)
	}()
	handle := uint32(0)
	for ctx.Err() == nil {
		burst := 1
		if handle == 0 {
			burst = wire.DefaultMaxChannels
		}
		var b []byte
		for range burst {
			handle++
			b = wire.Append(b, &wire.Join{Handle: handle, Channel: ch, Pub: pub, Sig: sig})
		}
		if _, err := nc.Write(b); err != nil {
			break
		}
		sent.Add(int64(burst))
		select {
		case <-gone:
			return ctx.Err() == nil
		case <-time.After(16 * time.Millisecond):
		}
	}
	return false
}

// /status is polled 60 times a second on a relay holding many channels
// (102,400 in the long run). Honest pings must not slow measurably:
// p50 within 2× its quiet figure plus 0.5 ms (-hostile.targets).
func TestStatusFlood(t *testing.T) {
	tg := startRelay(t, relayOptions{})
	channels := 6_400
	if full() {
		channels = 102_400
	}
	fillChannels(t, tg, channels)
	p, _, _ := tg.dial(t, "honest-pinger")
	var seq atomic.Uint64
	ping := func() (time.Duration, error) {
		start := time.Now()
		if err := p.Send(&wire.Ping{Data: seq.Add(1)}); err != nil {
			return 0, err
		}
		var pong wire.Pong
		if err := p.Expect(wire.TypePong, &pong); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	// One ping at a time on the one connection.
	var mu sync.Mutex
	serial := func() (time.Duration, error) { mu.Lock(); defer mu.Unlock(); return ping() }
	quiet := probe(2*time.Second, 10*time.Millisecond, serial)
	ctx, cancel := context.WithCancel(context.Background())
	var polls atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / 60)
		defer tick.Stop()
		for ctx.Err() == nil {
			<-tick.C
			resp, err := http.Get("http://" + tg.ops + "/status")
			if err != nil {
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			polls.Add(1)
		}
	})
	start, cpu := time.Now(), tg.cpuMeter()
	under := probe(*duration, 10*time.Millisecond, serial)
	rate, used := float64(polls.Load())/time.Since(start).Seconds(), cpu()
	cancel()
	wg.Wait()
	st := tg.status(t)
	reportGate(t, "status flood", "pings", tg, quiet, under, 100, 0,
		fmt.Sprintf("%d channels; /status polled %.0f/s; %s", st.Channels, rate, used))
	if st.Channels < channels {
		t.Errorf("relay holds %d channels, want %d", st.Channels, channels)
	}
	if q, u := pct(quiet, 0.5), pct(under, 0.5); *targets && u > 2*q+500*time.Microsecond {
		t.Errorf("status flood: honest ping p50 %v, over 2× its quiet %v plus 0.5ms", u, q)
	}
}

// fillChannels makes n self-made channels on tg, max_channels of them per
// connection, the connections kept open.
func fillChannels(t *testing.T, tg *target, n int) {
	t.Helper()
	per := wire.DefaultMaxChannels
	var wg sync.WaitGroup
	errs := make(chan error, n/per+1)
	next := atomic.Int64{}
	for range 4 {
		wg.Go(func() {
			for {
				c := int(next.Add(1) - 1)
				if c*per >= n {
					return
				}
				if err := joinMany(tg, t, c, min(per, n-c*per)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// joinMany opens connection c and joins m self-made channels on it.
func joinMany(tg *target, t *testing.T, c, m int) error {
	nc, err := net.DialTimeout("tcp", tg.addr, waitTimeout)
	if err != nil {
		return err
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitTimeout))
	p := wirepeer.New(nc, 0)
	w, err := p.Handshake("channel-maker")
	if err != nil {
		return err
	}
	var b []byte
	for h := range m {
		k, err := roster.DeriveKeys([]byte("status flood"), fmt.Sprintf("%d-%d", c, h))
		if err != nil {
			return err
		}
		b = wire.Append(b, wirepeer.JoinFrame(k, uint32(h+1), w.Nonce))
	}
	if err := p.Write(b); err != nil {
		return err
	}
	for range m {
		var j wire.Joined
		if err := p.Expect(wire.TypeJoined, &j); err != nil {
			return fmt.Errorf("connection %d: %w", c, err)
		}
	}
	nc.SetDeadline(time.Time{})
	p.Release()
	return nil
}
