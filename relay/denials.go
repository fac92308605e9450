package relay

import (
	"fmt"

	"github.com/cosnim/relays/wire"
)

// closeOverDenials counts a join denied for a bad proof on c and, at
// MaxDeniedJoins, closes c with a fatal Error join denied under handle,
// reporting true. Each proof costs a signature check, so a connection is
// given a few tries, not an endless supply; an honest client with the
// right secret is never denied.
func (r *Relay) closeOverDenials(c *conn, handle uint32) bool {
	c.denied++
	if c.denied < r.cfg.MaxDeniedJoins {
		return false
	}
	r.stats.DeniedClosed++
	r.closeWithError(c, wire.CodeJoinDenied, handle, fmt.Sprintf("%d joins denied: channel proofs do not verify", c.denied))
	return true
}
