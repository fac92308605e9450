// Package hostile holds the hostile-client suite: attacks on the real
// `cosnim start relay` binary over loopback, each reporting the relay's
// peak RSS, honest clients' ping and announce-to-watch latency during the
// attack, and entries lost (which must be 0). `make test` runs a short
// version; `make hostile` runs each attack for -hostile.duration (20s).
// The package has no non-test code beyond this comment.
package hostile
