// Package testrelay runs a real relayserver.Server for a test: on a
// loopback port, until the test ends or it is stopped. It is for tests only,
// by convention: no non-test file imports it.
//
// It imports relayserver, so relayserver's own tests use it from the
// external package relayserver_test, never from package relayserver.
package testrelay
