package conformance

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cosnim/relays/internal/wirepeer"
	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// Options configure a run.
type Options struct {
	// Dial connects to the relay, TLS included for a tcps:// relay.
	Dial func(ctx context.Context) (net.Conn, error)
	// DialRaw connects over plain TCP to the same port; nil skips the
	// check of what a port says to a client of the wrong kind (§2.2).
	DialRaw func(ctx context.Context) (net.Conn, error)
	// TLS is true for a tcps:// relay.
	TLS bool
	// Timeout bounds each wait for an answer (default 5s).
	Timeout time.Duration
	// Drain, when not nil, is called once every other check is done to
	// make the relay drain (stop it); the drain checks then run. Nil skips
	// them.
	Drain func()
	// DrainTimeout bounds the wait for the Drain and for the end of the
	// drain's grace (default 60s).
	DrainTimeout time.Duration
	// Progress, when not nil, receives a line as each check starts.
	Progress io.Writer
	// Only, when not empty, runs only the checks of these requirements.
	Only []string
}

// wanted reports whether the requirement id is to be checked.
func (o *Options) wanted(id string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, id) }

// Status is a check's outcome.
type Status string

// The outcomes.
const (
	Pass Status = "pass"
	Fail Status = "FAIL"
	Skip Status = "skip"
)

// Result is the outcome for one numbered requirement.
type Result struct {
	ID     string `json:"id"` // "§6.3"
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// String is the line the command prints: "§6.3 pass",
// "§12.2 FAIL: got EOF, want Error 12".
func (r Result) String() string {
	if r.Detail == "" {
		return r.ID + " " + string(r.Status)
	}
	return r.ID + " " + string(r.Status) + ": " + r.Detail
}

// Report is a run's results, in requirement order.
type Report struct {
	Results []Result `json:"results"`
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Skipped int      `json:"skipped"`
}

// OK reports whether no requirement failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// Result returns the result for requirement id.
func (r *Report) Result(id string) (Result, bool) {
	for _, x := range r.Results {
		if x.ID == id {
			return x, true
		}
	}
	return Result{}, false
}

// WriteText prints one line per requirement.
func (r *Report) WriteText(w io.Writer) {
	for _, x := range r.Results {
		fmt.Fprintln(w, x)
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// skipError marks a check that could not run.
type skipError struct{ why string }

func (e *skipError) Error() string { return e.why }

func skipf(format string, args ...any) error { return &skipError{fmt.Sprintf(format, args...)} }

// kit is one run.
type kit struct {
	opts   Options
	ctx    context.Context
	secret []byte
	hubs   int // hubs handed out by hub, for fresh channels
	mu     sync.Mutex
	// welcome is the first Welcome, whose limits size the checks.
	welcome *wire.Welcome
}

// Run drives the relay through every check and returns the report.
func Run(ctx context.Context, opts Options) *Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 60 * time.Second
	}
	k := &kit{opts: opts, ctx: ctx, secret: make([]byte, 32)}
	crand.Read(k.secret)
	results := map[string]Result{}
	record := func(id string, err error) {
		r := Result{ID: id, Status: Pass}
		var se *skipError
		switch {
		case errors.As(err, &se):
			r.Status, r.Detail = Skip, se.why
		case err != nil:
			r.Status, r.Detail = Fail, err.Error()
		}
		if old, ok := results[id]; ok && (old.Status == Fail || r.Status == Skip) {
			return // a requirement fails if any of its checks does
		}
		results[id] = r
	}
	s, err := k.connect()
	if err != nil {
		record("§6.2", fmt.Errorf("handshake: %v", err))
		return report(results)
	}
	s.close()
	// The slow checks wait on the relay's timers: run them beside the rest.
	var wg sync.WaitGroup
	var slowMu sync.Mutex
	for _, c := range slowChecks {
		if !opts.wanted(c.id) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.run(k)
			slowMu.Lock()
			record(c.id, err)
			slowMu.Unlock()
		}()
	}
	for _, c := range checks {
		if ctx.Err() != nil {
			break
		}
		if !opts.wanted(c.id) {
			continue
		}
		k.progress(c)
		err := c.run(k)
		slowMu.Lock()
		record(c.id, err)
		slowMu.Unlock()
	}
	wg.Wait()
	for _, c := range drainChecks {
		if opts.Drain == nil && opts.wanted(c.id) {
			record(c.id, skipf("the drain was not triggered (give --drain-wait and stop the relay during the run); this implementation's drain is checked by relay/relayserver TestDrainSequence"))
			continue
		}
	}
	if opts.Drain != nil && slices.ContainsFunc(drainChecks, func(c check) bool { return opts.wanted(c.id) }) {
		for id, err := range k.checkDrain() { // sorted: report sorts
			if opts.wanted(id) {
				record(id, err)
			}
		}
	}
	return report(results)
}

func (k *kit) progress(c check) {
	if k.opts.Progress != nil {
		fmt.Fprintf(k.opts.Progress, "checking %s: %s\n", c.id, c.what)
	}
}

// report sorts the results by requirement number and counts them.
func report(m map[string]Result) *Report {
	r := &Report{}
	for _, x := range m { // sorted: below
		r.Results = append(r.Results, x)
		switch x.Status {
		case Pass:
			r.Passed++
		case Fail:
			r.Failed++
		case Skip:
			r.Skipped++
		}
	}
	slices.SortFunc(r.Results, func(a, b Result) int { return compareIDs(a.ID, b.ID) })
	return r
}

// compareIDs orders "§3.2" before "§3.10" before "§12.1".
func compareIDs(a, b string) int {
	pa, pb := strings.Split(strings.TrimPrefix(a, "§"), "."), strings.Split(strings.TrimPrefix(b, "§"), ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x - y
		}
	}
	return len(pa) - len(pb)
}

// hub returns a fresh hub name: a channel new to the relay.
func (k *kit) hub() *roster.Keys {
	k.mu.Lock()
	k.hubs++
	n := k.hubs
	k.mu.Unlock()
	keys, err := roster.DeriveKeys(k.secret, fmt.Sprint("conformance-", n))
	if err != nil {
		panic(err) // only for an empty secret
	}
	return keys
}

// limit is the value the first Welcome advertised for key, else the
// protocol's default; ok is false when neither says.
func (k *kit) limit(key wire.LimitKey) (v uint64, ok bool) {
	if v, ok := k.welcome.Limit(key); ok {
		return v, true
	}
	for _, l := range wire.DefaultLimits() {
		if l.Key == key {
			return l.Value, true
		}
	}
	return 0, false
}

// session is one connection to the relay.
type session struct {
	k  *kit
	nc net.Conn
	p  *wirepeer.Peer
	w  *wire.Welcome
}

// contextFor bounds one dial by the kit's timeout.
func contextFor(k *kit) (context.Context, context.CancelFunc) {
	return context.WithTimeout(k.ctx, k.opts.Timeout)
}

// dial connects without a handshake.
func (k *kit) dial() (*session, error) {
	ctx, cancel := contextFor(k)
	defer cancel()
	nc, err := k.opts.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return &session{k: k, nc: nc, p: wirepeer.New(nc, 0)}, nil
}

// connect dials and handshakes.
func (k *kit) connect() (*session, error) {
	s, err := k.dial()
	if err != nil {
		return nil, err
	}
	s.deadline()
	w, err := s.p.Handshake("cosnim-conformance")
	if err != nil {
		s.close()
		return nil, fmt.Errorf("handshake: got %s, want Welcome", describe(err))
	}
	s.w = w
	k.mu.Lock()
	if k.welcome == nil {
		k.welcome = w
	}
	k.mu.Unlock()
	return s, nil
}

// pair connects two sessions.
func (k *kit) pair() (a, b *session, err error) {
	if a, err = k.connect(); err != nil {
		return nil, nil, err
	}
	if b, err = k.connect(); err != nil {
		a.close()
		return nil, nil, err
	}
	return a, b, nil
}

// joinedPair connects two sessions and joins keys' channel, a on handle
// ha and b on hb.
func (k *kit) joinedPair(keys *roster.Keys, ha, hb uint32) (a, b *session, err error) {
	if a, b, err = k.pair(); err != nil {
		return nil, nil, err
	}
	if _, err = a.join(keys, ha); err == nil {
		_, err = b.join(keys, hb)
	}
	if err != nil {
		a.close()
		b.close()
		return nil, nil, err
	}
	return a, b, nil
}

func (s *session) close() { s.nc.Close() }

// deadline gives the next read or write the kit's timeout.
func (s *session) deadline() { s.deadlineIn(s.k.opts.Timeout) }

func (s *session) deadlineIn(d time.Duration) { s.nc.SetDeadline(time.Now().Add(d)) }

func (s *session) send(f wire.Frame) error {
	s.deadline()
	return s.p.Send(f)
}

func (s *session) write(b []byte) error {
	s.deadline()
	return s.p.Write(b)
}

// next reads the next frame, answering Pings.
func (s *session) next() (wire.Frame, error) {
	for {
		s.deadline()
		f, err := s.p.NextFrame()
		if err != nil {
			return nil, err
		}
		if p, ok := f.(*wire.Ping); ok {
			if err := s.p.Send(&wire.Pong{Data: p.Data}); err != nil {
				return nil, err
			}
			continue
		}
		return f, nil
	}
}

// join joins k's channel under handle and returns the Joined.
func (s *session) join(keys *roster.Keys, handle uint32) (*wire.Joined, error) {
	if err := s.send(wirepeer.JoinFrame(keys, handle, s.w.Nonce)); err != nil {
		return nil, err
	}
	f, err := s.next()
	if err != nil {
		return nil, fmt.Errorf("join: got %s, want Joined", describe(err))
	}
	j, ok := f.(*wire.Joined)
	if !ok || j.Handle != handle {
		return nil, fmt.Errorf("got %s, want Joined for handle %d", frameText(f), handle)
	}
	return j, nil
}

// expectError reads until an Error frame and checks its code, fatality
// and handle; after a fatal one the relay must close (EOF).
func (s *session) expectError(code wire.Code, fatal bool, handle uint32) error {
	for {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("got %s, want %s", describe(err), errorText(code, fatal))
		}
		e, ok := f.(*wire.Error)
		if !ok {
			continue
		}
		if e.Code != code || e.Fatal() != fatal || e.Handle != handle {
			return fmt.Errorf("got %s on handle %d, want %s on handle %d", frameText(e), e.Handle, errorText(code, fatal), handle)
		}
		if fatal {
			return s.expectEOF()
		}
		return nil
	}
}

// expectEOF checks that the relay closes: nothing but EOF (or a reset)
// comes next.
func (s *session) expectEOF() error {
	f, err := s.next()
	switch {
	case err == nil:
		return fmt.Errorf("got %s after a fatal Error, want the connection closed", frameText(f))
	case isTimeout(err):
		return errors.New("the connection stayed open after a fatal Error")
	}
	return nil
}

// alive checks that the connection still answers a Ping.
func (s *session) alive() error {
	data := uint64(time.Now().UnixNano())
	if err := s.send(&wire.Ping{Data: data}); err != nil {
		return fmt.Errorf("connection closed: %v", err)
	}
	for {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("no Pong: %s", describe(err))
		}
		if p, ok := f.(*wire.Pong); ok && p.Data == data {
			return nil
		}
		if e, ok := f.(*wire.Error); ok && e.Fatal() {
			return fmt.Errorf("got %s, want the connection kept", frameText(e))
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// describe names a read error as the report prints it.
func describe(err error) string {
	var re *wirepeer.RemoteError
	switch {
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF inside a frame"
	case errors.As(err, &re):
		return frameText(&re.Frame)
	case isTimeout(err):
		return "nothing (timed out)"
	}
	return err.Error()
}

func errorText(code wire.Code, fatal bool) string {
	f := "non-fatal"
	if fatal {
		f = "fatal"
	}
	return fmt.Sprintf("%s Error %d %s", f, code, code)
}

func frameText(f wire.Frame) string {
	if e, ok := f.(*wire.Error); ok {
		return errorText(e.Code, e.Fatal()) + fmt.Sprintf(" (%q)", e.Text)
	}
	return f.FrameType().String()
}

// rawFrame is a frame of type t with payload p, encoded by hand.
func rawFrame(t wire.Type, p []byte) []byte {
	b := make([]byte, 0, wire.HeaderSize+len(p))
	b = append(b, byte((len(p)+1)>>24), byte((len(p)+1)>>16), byte((len(p)+1)>>8), byte(len(p)+1), byte(t))
	return append(b, p...)
}

// seal makes n entries of keys' channel with refs prefixed tag.
func seal(keys *roster.Keys, tag string, n int) ([]roster.Entry, error) {
	out := make([]roster.Entry, 0, n)
	for i := range n {
		e, err := keys.Seal(fmt.Appendf(nil, "%s-%06d", tag, i))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func sealedOf(es []roster.Entry) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.Sealed
	}
	return out
}

// announce sends entries under handle in frames that fit, and waits for
// every Ack.
func (s *session) announce(handle uint32, es []roster.Entry) error {
	seq := uint32(0)
	for len(es) > 0 {
		n := wire.EntriesFit(len(es), func(i int) int { return len(es[i].Sealed) }, s.p.MaxFrame())
		seq++
		if err := s.send(&wire.Announce{Handle: handle, Seq: seq, Entries: sealedOf(es[:n])}); err != nil {
			return err
		}
		es = es[n:]
	}
	for acked := uint32(0); acked < seq; {
		f, err := s.next()
		if err != nil {
			return fmt.Errorf("waiting for Ack %d of %d: %s", acked+1, seq, describe(err))
		}
		switch f := f.(type) {
		case *wire.Ack:
			if f.Handle != handle || f.Seq != acked+1 {
				return fmt.Errorf("got Ack handle %d seq %d, want handle %d seq %d", f.Handle, f.Seq, handle, acked+1)
			}
			acked++
		case *wire.Error:
			return fmt.Errorf("got %s, want Ack", frameText(f))
		}
	}
	return nil
}
