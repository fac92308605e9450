package hostile

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// selfMade is a channel an attacker derives from a secret of its own.
func selfMade(t *testing.T, name string) *roster.Keys {
	t.Helper()
	k, err := roster.DeriveKeys([]byte("attacker "+name), name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fill announces n entries of about size bytes on p's handle 1.
func fill(t *testing.T, p *wirepeer.Peer, k *roster.Keys, prefix string, n, size int) {
	t.Helper()
	pad := make([]byte, size)
	var batch [][]byte
	flush := func(seq uint32) {
		if err := p.Send(&wire.Announce{Handle: 1, Seq: seq, Entries: batch}); err != nil {
			t.Fatal(err)
		}
		waitAck(t, p)
		batch = batch[:0]
	}
	perFrame := max(1, (wire.DefaultMaxFrameSize-64)/(size+64))
	for i := range n {
		e, err := k.Seal(append(fmt.Appendf(nil, "%s-%d-", prefix, i), pad...))
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, e.Sealed)
		if len(batch) == perFrame {
			flush(uint32(i))
		}
	}
	if len(batch) > 0 {
		flush(uint32(n))
	}
}

// waitAck reads until an Ack, passing over non-fatal Errors (a relay
// that evicts from the channel asks its members to rescan storage).
func waitAck(t *testing.T, p *wirepeer.Peer) {
	t.Helper()
	for {
		f, err := p.NextFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *wire.Ack:
			return
		case *wire.Error:
			if f.Flags&wire.ErrorFatal != 0 {
				t.Fatalf("relay closed the connection: %v: %s", f.Code, f.Text)
			}
		}
	}
}

// gone reports whether the relay closed nc (read fails with EOF or reset)
// within d; it reads and throws away what is queued.
func gone(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	for {
		if _, err := nc.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}

// A member of a self-made 50,000-entry channel stops reading and floods
// "I have nothing": the relay stops answering it and closes it, and its
// memory stays bounded (checkRSS).
func TestSyncFlood(t *testing.T) {
	const budget = 64 << 20
	tg := startRelay(t, relayOptions{limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	wait := honest(t, tg)
	p, w, nc := tg.dial(t, "attacker")
	k := selfMade(t, "flood")
	if _, err := p.Join(w, k, 1); err != nil {
		t.Fatal(err)
	}
	fill(t, p, k, "flood", 50_000, 16)
	claim := wire.Append(nil, &wire.Sync{Handle: 1, Session: 1,
		Msg: roster.SyncMsg{Ranges: []roster.Range{{Mode: roster.ModeFingerprint}}}})
	var burst []byte
	for range 50 {
		burst = append(burst, claim...)
	}
	sent := 0
	end := time.Now().Add(*duration)
	nc.SetWriteDeadline(end.Add(time.Second))
	for time.Now().Before(end) {
		if _, err := nc.Write(burst); err != nil {
			break // closed by the relay
		}
		sent += 50
		time.Sleep(5 * time.Millisecond) // 10,000 a second: the default frame rate
	}
	report(t, "sync flood", tg, wait, 100*time.Millisecond)
	st := tg.status(t)
	// Gated (its claims wait, unanswered) or, once they and its queue
	// pass send_queue, closed.
	if closed := gone(nc, time.Second); !closed && st.SyncsDeferred == 0 {
		t.Errorf("the non-reading flooder (%d claims sent) is neither gated nor closed", sent)
	}
	t.Logf("sync flood: %d claims sent; relay closed %d connections over their queue, deferred %d syncs", sent, st.QueueFull, st.SyncsDeferred)
}

// shared joins members instances to k's channel, the first announcing n
// entries of 64 bytes; they then read nothing more and stay members.
func shared(t *testing.T, tg *target, name string, k *roster.Keys, members, n int) {
	t.Helper()
	for i := range members {
		p, w, _ := tg.dial(t, fmt.Sprint(name, "-", i))
		if _, err := p.Join(w, k, 1); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			fill(t, p, k, name, n, 64)
		}
		p.Release()
	}
}

// Outsiders fill the memory budget with self-made channels, one member
// each: an existing honest channel that several instances share keeps
// every entry and its complete flag, a new honest hub keeps what it
// announces (the honest probe's hub), and honest clients are still
// admitted.
func TestBudgetFill(t *testing.T) {
	const budget = 64 << 20 // the smallest for which checkRSS's bound holds (docs/CONFIG.md)
	tg := startRelay(t, relayOptions{limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	honestKeys := selfMade(t, "existing honest")
	shared(t, tg, "existing", honestKeys, 3, 20_000)
	wait := honest(t, tg)
	for i := range 12 {
		p, w, _ := tg.dial(t, fmt.Sprint("outsider-", i))
		k := selfMade(t, fmt.Sprint("outsider-", i))
		if _, err := p.Join(w, k, 1); err != nil {
			t.Fatalf("outsider %d: %v", i, err)
		}
		fill(t, p, k, "junk", 8000, 900) // 86 MB of junk for the 64 MiB budget
	}
	// A new honest hub, two instances, announces 500 entries into the full
	// budget and keeps them all.
	newHub := selfMade(t, "new honest hub")
	shared(t, tg, "new", newHub, 2, 500)
	jp, jw, _ := tg.dial(t, "new-hub-late")
	if j, err := jp.Join(jw, newHub, 1); err != nil || j.Cached != 500 || j.Flags&wire.JoinedComplete == 0 {
		t.Errorf("new honest hub after the attack: %+v, %v; want 500 cached and complete", j, err)
	}
	st := tg.status(t)
	if st.Memory.Total > budget {
		t.Errorf("accounted memory %d over the %d budget", st.Memory.Total, budget)
	}
	// A late honest member of the existing channel: everything, complete.
	lp, lw, _ := tg.dial(t, "late-honest")
	j, err := lp.Join(lw, honestKeys, 1)
	if err != nil {
		t.Fatalf("an honest client was refused under the attack: %v", err)
	}
	if j.Cached != 20_000 || j.Flags&wire.JoinedComplete == 0 {
		t.Errorf("existing honest channel: %d of 20000 cached, complete=%v", j.Cached, j.Flags&wire.JoinedComplete != 0)
	}
	report(t, "budget fill", tg, wait, 100*time.Millisecond)
}

// One connection joins and leaves self-made channels as fast as the relay
// lets it: the channels it leaves empty are accounted and capped.
func TestChannelSwarm(t *testing.T) {
	const budget = 16 << 20
	tg := startRelay(t, relayOptions{limits: []string{fmt.Sprintf("memory_budget: %d", budget)}})
	wait := honest(t, tg)
	joins, conns := 0, 0
	end := time.Now().Add(*duration)
	for time.Now().Before(end) {
		// Past join_rate the relay closes the connection: come back.
		p, w, nc := tg.dial(t, "swarm")
		conns++
		for time.Now().Before(end) {
			k := selfMade(t, fmt.Sprint("swarm-", joins))
			if err := p.Send(wirepeer.JoinFrame(k, 1, w.Nonce)); err != nil {
				break
			}
			var j wire.Joined
			if err := p.Expect(wire.TypeJoined, &j); err != nil {
				break
			}
			joins++
			if err := p.Send(&wire.Leave{Handle: 1}); err != nil {
				break
			}
		}
		nc.Close()
	}
	st := tg.status(t)
	report(t, "channel swarm", tg, wait, 100*time.Millisecond)
	t.Logf("channel swarm: %d channels joined and left over %d connections; relay holds %d channels, accounted %.1f MiB (channels %.1f)",
		joins, conns, st.Channels, float64(st.Memory.Total)/(1<<20), float64(st.Memory.Channels)/(1<<20))
	if st.Memory.Total > budget {
		t.Errorf("accounted memory %d over the %d budget", st.Memory.Total, budget)
	}
}

// Several connections send bad join proofs at about 1,000 a second;
// honest joins still complete (target < 100 ms).
func TestBadJoins(t *testing.T) {
	tg := startRelay(t, relayOptions{})
	wait := honest(t, tg)
	k := selfMade(t, "victim")
	stop := make(chan struct{})
	done := make(chan int)
	for i := range 20 {
		go func() {
			sent := 0
			defer func() { done <- sent }()
			for {
				nc, err := net.Dial("tcp", tg.addr)
				if err != nil {
					return
				}
				p := wirepeer.New(nc, 0)
				w, err := p.Handshake(fmt.Sprint("bad-joiner-", i))
				for err == nil {
					bad := wirepeer.JoinFrame(k, 1, [roster.JoinNonceSize]byte{}) // wrong nonce
					bad.Handle = uint32(1 + sent%4)
					_ = w
					if err = p.Send(bad); err == nil {
						sent++
					}
					select {
					case <-stop:
						nc.Close()
						return
					case <-time.After(20 * time.Millisecond): // 50 a second each
					}
				}
				nc.Close()
			}
		}()
	}
	var joinLat latencies
	end := time.Now().Add(*duration)
	for time.Now().Before(end) {
		p, w, nc := tg.dial(t, "honest-joiner")
		start := time.Now()
		if _, err := p.Join(w, selfMade(t, "honest join"), 1); err != nil {
			joinLat.fail()
		} else {
			joinLat.add(time.Since(start))
		}
		nc.Close()
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	sent := 0
	for range 20 {
		sent += <-done
	}
	p99, worst, n, failed := joinLat.summary()
	t.Logf("bad joins: %d bad proofs in %v (%.0f/s); honest joins p99 %v max %v (%d, %d failed)",
		sent, *duration, float64(sent)/duration.Seconds(), p99, worst, n, failed)
	if n == 0 || failed > 0 {
		t.Errorf("honest joins: %d completed, %d failed", n, failed)
	}
	if *targets && p99 > 100*time.Millisecond {
		t.Errorf("honest join p99 %v over the 100ms target", p99)
	}
	report(t, "bad joins", tg, wait, 100*time.Millisecond)
}

// A connection that does not read sends Pings as fast as the frame rate
// allows: its Pongs queue up to the send-queue cap, no further.
func TestPingFlood(t *testing.T) {
	tg := startRelay(t, relayOptions{})
	wait := honest(t, tg)
	_, _, nc := tg.dial(t, "pinger")
	ping := wire.Append(nil, &wire.Ping{Data: 1})
	burst := make([]byte, 0, 100*len(ping))
	for range 100 {
		burst = append(burst, ping...)
	}
	end := time.Now().Add(*duration)
	nc.SetWriteDeadline(end.Add(time.Second))
	sent := 0
	for time.Now().Before(end) {
		if _, err := nc.Write(burst); err != nil {
			break
		}
		sent += 100
		time.Sleep(10 * time.Millisecond) // 10,000 a second, the default frame rate
	}
	st := tg.status(t)
	report(t, "ping flood", tg, wait, 100*time.Millisecond)
	t.Logf("ping flood: %d pings sent unread; relay queues %.1f MiB in all", sent, float64(st.Memory.Queues)/(1<<20))
	if st.Memory.Queues > 8<<20 {
		t.Errorf("send queues hold %d bytes: past the 4 MiB cap of one connection and the honest ones' share", st.Memory.Queues)
	}
}
