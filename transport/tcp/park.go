package tcp

import (
	"crypto/tls"
	"net"
	"syscall"
)

// maxWrappers bounds the unwrapping in rawConnOf.
const maxWrappers = 8

// rawConnOf returns the socket under nc's wrappers, or nil when nc must
// not park: it has no socket, or a wrapper holds bytes read from the
// socket and not yet returned, which the parker would never see.
func rawConnOf(nc net.Conn) syscall.RawConn {
	for range maxWrappers {
		switch v := nc.(type) {
		case *tls.Conn:
			// A read deadline's timeout is not sticky in a tls.Conn (a
			// Temporary net.Error, which it does not record as the
			// connection's error), and it reads the socket only when it
			// holds no complete record. So after a timeout it holds at
			// most a partial record whose rest must come from the
			// socket: the parker wakes when it does, and the fresh
			// reader's Read completes the record.
			nc = v.NetConn()
		case *sniffConn:
			if v.holding() {
				return nil
			}
			nc = v.Conn
		case *net.TCPConn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			// A wrapper that offers its inner conn promises to hold no
			// bytes it has read (see Loop.Serve).
			nc = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// park hands c's socket to the parker; false means c keeps its reader.
func (c *conn) park() bool {
	rc := rawConnOf(c.nc)
	if rc == nil {
		return false
	}
	return c.l.park(c, rc)
}

// stopParking forbids c to park from now on and takes it out of the
// parker if it is parked. Every path that closes a socket the reader does
// not own calls it first, so the parker keeps no entry for a closed one.
func (c *conn) stopParking() {
	l := c.l
	l.pmu.Lock()
	defer l.pmu.Unlock()
	c.noPark = true
	if c.parkID != 0 {
		l.pk.dropLocked(c)
	}
}

// ParkStats counts parked connections.
type ParkStats struct {
	Parked int    // connections parked now
	Parks  uint64 // parks since the Loop started
	Wakes  uint64 // parked connections woken by their socket
}

// ParkStats reports how many connections are parked and have parked.
func (l *Loop) ParkStats() ParkStats {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	if l.pk == nil {
		return ParkStats{}
	}
	return l.pk.statsLocked()
}
