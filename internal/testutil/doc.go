// Package testutil holds the small helpers that tests in several packages
// need alike: a log buffer safe for concurrent use, a free loopback port,
// writing a file, polling for a condition. It is for tests only, by convention: no non-test file
// imports it. It imports nothing of this module, so that any package's
// internal tests can use it without an import cycle.
package testutil
