// Package relayserver is the production driver of the relay core: it runs
// one relay.Relay on a real listener through a tcp.Loop, completes TLS
// handshakes (classifying and counting failures) before the core sees a
// connection, verifies join proofs off the event loop from the core's
// Ready, serves the operations listener (/metrics, /healthz, /readyz,
// /status) and drains on shutdown. It reads the clock and starts
// goroutines; the core it drives does neither.
package relayserver
