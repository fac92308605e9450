package relay

import "time"

// Per-connection log lines are rate limited, so a flood of bad joins,
// refusals or timeouts writes a summary rather than a line each: at most
// logBurst lines of one kind per logWindow, then one line counting the
// rest when the window ends. Time is the event's, so replays log alike.
const (
	logBurst  = 20
	logWindow = time.Second
)

// logKind names a kind of per-connection log line.
type logKind uint8

const (
	logRefused logKind = iota
	logClosing
	logJoinDenied
	logClientError
	logBackboneBad
	numLogKinds
)

var logKindNames = [numLogKinds]string{"connection refused", "closing connection", "join denied: bad channel proof", "client reported error", "bad backbone message dropped"}

// logGate counts one kind's lines in the current window.
type logGate struct {
	start      time.Time
	lines      int
	suppressed int
}

// logConn writes an info line of kind k unless the kind is over its burst.
func (r *Relay) logConn(k logKind, args ...any) {
	g := &r.logGates[k]
	r.closeLogWindow(k)
	if g.lines < logBurst {
		g.lines++
		r.log.Info(logKindNames[k], args...)
		return
	}
	g.suppressed++
}

// closeLogWindow starts a new window for k once the old one is over,
// reporting what it suppressed.
func (r *Relay) closeLogWindow(k logKind) {
	g := &r.logGates[k]
	if r.now.Sub(g.start) < logWindow {
		return
	}
	if g.suppressed > 0 {
		r.log.Info("log lines suppressed", "kind", logKindNames[k], "count", g.suppressed, "window", logWindow)
	}
	*g = logGate{start: r.now}
}

// flushLogs reports suppressed lines of windows that ended.
func (r *Relay) flushLogs() {
	for k := range numLogKinds {
		if r.logGates[k].suppressed > 0 {
			r.closeLogWindow(k)
		}
	}
}
