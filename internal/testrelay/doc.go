// Package testrelay runs a real relayserver.Server for a test: on a
// loopback port, until the test ends or it is stopped. It is for tests only,
// by convention: no non-test file imports it. StartBad serves a malicious
// relay (internal/badrelay) instead, and MeasureListings drives a real
// Agent's storage listings against whatever it dials.
//
// It imports relayserver, so relayserver's own tests use it from the
// external package relayserver_test, never from package relayserver.
package testrelay
