package netsim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/backbone"
)

// busRec records what a port's handler hears.
type busRec struct {
	name  string
	n     *Network
	log   []string
	at    []time.Duration // virtual time of each Message
	port  *BusPort
	reply bool // answer every request
	// delay, if set, answers that long after the request came.
	delay time.Duration
}

func (r *busRec) Message(m backbone.Msg, now time.Time) {
	r.log = append(r.log, fmt.Sprintf("msg %s %s", m.Subject, m.Data))
	r.at = append(r.at, r.n.now)
	if r.reply && m.Reply != "" {
		if r.delay > 0 {
			r.n.schedule(r.n.now+r.delay, func() { r.port.Respond(m.Reply, []byte("from "+r.name)) })
			return
		}
		r.port.Respond(m.Reply, []byte("from "+r.name))
	}
}

func (r *busRec) Response(id uint64, data []byte, err error, now time.Time) {
	r.log = append(r.log, fmt.Sprintf("resp %d %s %v", id, data, err))
}

func (r *busRec) BusState(up bool, now time.Time) {
	r.log = append(r.log, fmt.Sprintf("up %t", up))
}

// busNet is a network with a bus and nodes a, b, c on it, connected.
func busNet(t *testing.T, seed uint64) (*Network, *Bus, []*busRec) {
	n := New(seed, Options{})
	bus := n.NewBus("nats", BusOptions{})
	var recs []*busRec
	for _, name := range []string{"a", "b", "c"} {
		nd := n.AddNode(name)
		nd.SetHandler(newRec(name))
		r := &busRec{name: name, n: n}
		r.port = bus.Attach(nd)
		r.port.SetHandler(r)
		recs = append(recs, r)
	}
	n.RunFor(10 * time.Millisecond)
	for _, r := range recs {
		if !slices.Equal(r.log, []string{"up true"}) {
			t.Fatalf("%s: %v, want connected", r.name, r.log)
		}
		r.log = nil
	}
	return n, bus, recs
}

func TestBusLatencyOrderAndNoEcho(t *testing.T) {
	n, _, r := busNet(t, 1)
	for _, x := range r {
		x.port.Subscribe("s")
	}
	start := n.now
	for i := range 20 {
		r[0].port.Publish("s", []byte(fmt.Sprint(i)))
	}
	n.RunFor(10 * time.Millisecond)
	if len(r[0].log) != 0 {
		t.Errorf("publisher heard itself: %v", r[0].log)
	}
	for _, x := range r[1:] {
		if len(x.log) != 20 {
			t.Fatalf("%s got %d messages, want 20", x.name, len(x.log))
		}
		for i, l := range x.log {
			if l != fmt.Sprintf("msg s %d", i) {
				t.Fatalf("%s: message %d is %q: publish order lost", x.name, i, l)
			}
			d := x.at[i] - start
			if d < time.Millisecond {
				t.Errorf("%s: delivered after %v, before the 1ms latency", x.name, d)
			}
		}
		if d := x.at[0] - start; d >= 1200*time.Microsecond {
			t.Errorf("%s: first delivery after %v, past latency plus jitter", x.name, d)
		}
	}
}

func TestBusRequestRepliesWithinWindowAndTimeouts(t *testing.T) {
	n, bus, r := busNet(t, 2)
	r[1].port.Subscribe("q")
	r[2].port.Subscribe("q")
	r[0].port.Subscribe("q") // no-echo: a requester does not answer itself
	r[1].reply, r[2].reply, r[0].reply = true, true, true
	r[0].port.Request("q", []byte("hi"), 7)
	n.RunFor(10 * time.Millisecond)
	var resps []string
	for _, l := range r[0].log {
		if len(l) > 4 && l[:4] == "resp" {
			resps = append(resps, l)
		}
	}
	slices.Sort(resps)
	if !slices.Equal(resps, []string{"resp 7 from b <nil>", "resp 7 from c <nil>"}) {
		t.Fatalf("responses %v, want both replies within the reply window", resps)
	}
	// A reply past the window after the first is dropped.
	r[0].log = nil
	r[2].delay = backbone.ReplyWindow + 5*time.Millisecond
	r[0].port.Request("q", []byte("hi"), 6)
	n.RunFor(backbone.ReplyWindow + 20*time.Millisecond)
	if !slices.Equal(r[0].log, []string{"resp 6 from b <nil>"}) {
		t.Fatalf("got %v, want the first reply only: the other came after the window", r[0].log)
	}
	r[2].delay = 0
	// Nobody else subscribed: no responders.
	r[0].log = nil
	r[0].port.Request("none", nil, 8)
	n.RunFor(10 * time.Millisecond)
	if !slices.Equal(r[0].log, []string{"resp 8  " + backbone.ErrNoResponders.Error()}) {
		t.Errorf("got %v, want no responders", r[0].log)
	}
	// A subscriber that never answers: timeout after RequestTimeout.
	r[0].log = nil
	r[1].reply, r[2].reply = false, false
	start := n.now
	r[0].port.Request("q", nil, 9)
	n.RunFor(backbone.RequestTimeout - time.Millisecond)
	if len(r[0].log) != 0 {
		t.Fatalf("got %v before the request timeout", r[0].log)
	}
	n.RunFor(time.Millisecond)
	if !slices.Equal(r[0].log, []string{"resp 9  " + backbone.ErrTimeout.Error()}) || n.now-start != backbone.RequestTimeout {
		t.Errorf("got %v at %v, want a timeout at %v", r[0].log, n.now-start, backbone.RequestTimeout)
	}
	if s := bus.Stats(); s.Replies != 3 || s.NoResponders != 1 || s.Timeouts != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestBusPartitionLosesAndHeals(t *testing.T) {
	n, bus, r := busNet(t, 3)
	r[1].port.Subscribe("s")
	bus.Partition("b")
	r[0].port.Publish("s", []byte("lost"))
	r[0].port.Request("s", nil, 1)
	n.RunFor(10 * time.Millisecond)
	if !slices.Equal(r[1].log, []string{"up false"}) {
		t.Errorf("b: %v, want only the disconnect", r[1].log)
	}
	if !slices.Equal(r[0].log, []string{"resp 1  " + backbone.ErrNoResponders.Error()}) {
		t.Errorf("a: %v, want no responders while b is cut", r[0].log)
	}
	r[1].port.Publish("s", nil)
	r[1].port.Request("s", nil, 2)
	n.RunFor(10 * time.Millisecond)
	if !slices.Equal(r[1].log, []string{"up false", "resp 2  " + backbone.ErrDown.Error()}) {
		t.Errorf("b: %v, want its request refused while cut", r[1].log)
	}
	bus.Heal("b")
	n.RunFor(10 * time.Millisecond)
	r[0].port.Publish("s", []byte("after"))
	n.RunFor(10 * time.Millisecond)
	if want := []string{"up false", "resp 2  " + backbone.ErrDown.Error(), "up true", "msg s after"}; !slices.Equal(r[1].log, want) {
		t.Errorf("b: %v, want %v (subscriptions kept over the reconnect)", r[1].log, want)
	}
}

func TestBusCrashLosesInFlight(t *testing.T) {
	n, bus, r := busNet(t, 4)
	r[1].port.Subscribe("s")
	r[0].port.Publish("s", []byte("in-flight"))
	r[0].port.Request("s", nil, 5)
	bus.Crash()
	n.RunFor(10 * time.Millisecond)
	if !slices.Equal(r[1].log, []string{"up false"}) {
		t.Errorf("b: %v, want the disconnect and nothing in flight", r[1].log)
	}
	if !slices.Equal(r[0].log, []string{"up false", "resp 5  " + backbone.ErrDown.Error()}) {
		t.Errorf("a: %v, want the disconnect, then its request failed", r[0].log)
	}
	bus.Restart()
	n.RunFor(10 * time.Millisecond)
	r[0].port.Publish("s", []byte("again"))
	n.RunFor(10 * time.Millisecond)
	if want := []string{"up false", "up true", "msg s again"}; !slices.Equal(r[1].log, want) {
		t.Errorf("b: %v, want %v", r[1].log, want)
	}
	// A crashed node loses its port's subscriptions with its process.
	n.Node("b").Crash()
	r[0].port.Publish("s", []byte("to-the-dead"))
	n.RunFor(10 * time.Millisecond)
	if len(r[1].log) != 3 {
		t.Errorf("b heard %v after its crash", r[1].log[3:])
	}
	n.Node("b").Restart(newRec("b"))
	fresh := &busRec{name: "b2", n: n, port: r[1].port}
	r[1].port.SetHandler(fresh)
	r[0].port.Publish("s", []byte("unsubscribed"))
	n.RunFor(10 * time.Millisecond)
	if !slices.Equal(fresh.log, []string{"up true"}) {
		t.Errorf("restarted b: %v, want connected with no subscriptions", fresh.log)
	}
}

// busTrace runs a small scenario and returns its trace.
func busTrace(seed uint64) []string {
	n := New(seed, Options{})
	var lines []string
	n.SetTrace(func(l string) { lines = append(lines, l) })
	bus := n.NewBus("nats", BusOptions{Jitter: time.Millisecond})
	var ports []*BusPort
	for _, name := range []string{"a", "b", "c"} {
		nd := n.AddNode(name)
		nd.SetHandler(newRec(name))
		r := &busRec{name: name, n: n, reply: true}
		r.port = bus.Attach(nd)
		r.port.SetHandler(r)
		r.port.Subscribe("s")
		ports = append(ports, r.port)
	}
	n.RunFor(5 * time.Millisecond)
	for i := range 30 {
		ports[i%3].Publish("s", []byte{byte(i)})
		if i%7 == 0 {
			ports[i%3].Request("s", nil, uint64(i))
		}
	}
	bus.Partition("c")
	n.RunFor(time.Second)
	return lines
}

func TestBusDeterministic(t *testing.T) {
	a, b := busTrace(11), busTrace(11)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different traces")
	}
	if slices.Equal(a, busTrace(12)) {
		t.Error("different seeds gave the same trace: jitter is not drawn from the network's source")
	}
	var msgs int
	for _, l := range a {
		if strings.Contains(l, " bus-msg ") {
			msgs++
		}
	}
	if msgs == 0 {
		t.Error("bus deliveries are not in the trace")
	}
}
