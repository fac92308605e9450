// Package wirepeer speaks the relay protocol directly, as a client, without
// a client core: the CLI's `relay ping`, the load generator behind `relay
// bench`, the end-to-end tests and the simulator's forger use it.
//
// Peer is blocking: it wraps an io.ReadWriter (usually a net.Conn), frames
// what it reads with wire.Reader, so the frame size limit is checked before
// anything is buffered, and returns one frame per Next. The frame builders
// (HelloFrame, JoinFrame, PongFor) are shared with peers that are not
// blocking, such as the simulator's forger over a transport.Conn.
package wirepeer
