// Package tcp is the real driver of the transport seam: an event Loop that
// runs one core over TCP and TLS connections, with a reader goroutine per
// busy connection (an idle one parks in the Loop's epoll set), a writer
// while bytes are queued, dialers, TLS configuration and certificate
// reloading, plaintext/TLS sniffing and relay URL parsing.
//
// Every Handler call happens under the Loop's lock, one at a time, so the
// cores it feeds stay single-threaded.
package tcp
