package relay

import (
	"fmt"

	"github.com/cosnim/relays/transport"
	"github.com/cosnim/relays/wire"
)

// closeOverDenials counts a join denied for a bad proof on c and, at
// MaxDeniedJoins, closes c with a fatal Error join denied under handle,
// reporting true. Each proof costs a signature check, so a connection is
// given a few tries, not an endless supply; an honest client with the
// right secret is never denied.
func (r *Relay) closeOverDenials(c *conn, handle uint32) bool {
	c.denied++
	if c.denied < r.cfg.MaxDeniedJoins && !c.suspect {
		return false
	}
	r.stats.DeniedClosed++
	r.closeWithError(c, wire.CodeJoinDenied, handle, fmt.Sprintf("%d joins denied: channel proofs do not verify", c.denied))
	return true
}

// Suspect marks tc's connection as coming from where bad proofs came from
// before: its first join denied (a bad proof, handle 0, a channel joined
// twice) closes it, and its join checks wait behind those of clean
// connections. A client with the secret
// is never denied, so it is served as before.
func (r *Relay) Suspect(tc transport.Conn) {
	if c := r.conns[tc]; c != nil {
		c.suspect = true
	}
}

// denyJoin refuses a join with a non-fatal Error, or, on a suspect
// connection, closes it with the Error fatal.
func (r *Relay) denyJoin(c *conn, code wire.Code, handle uint32, text string) error {
	if c.suspect {
		r.closeWithError(c, code, handle, text)
		return errClosed
	}
	r.sendError(c, code, handle, false, text)
	return nil
}

// denials is what a JoinCheck reports of c's denials.
func (c *conn) denials() int {
	if c.suspect {
		return max(c.denied, 1)
	}
	return c.denied
}
