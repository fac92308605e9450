package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cosnim/relays/client/agent"
)

// Exit codes. exitCodesHelp documents them in the root help, and README's
// "Exit codes" section must say the same (TestExitCodesDocumented).
const (
	exitOK         = 0
	exitFailure    = 1 // the command failed: configuration, files, a relay error
	exitUsage      = 2 // the command line is wrong: unknown command or flag, bad flag value
	exitPermanent  = 3 // the relay cannot be used as configured; retrying will not help
	exitIncomplete = 4 // gave up: --timeout passed first, or a bench run delivered less than asked
)

// exitCodesHelp is the "Exit codes" part of the root help.
var exitCodesHelp = fmt.Sprintf(`Exit codes:
  %d  success
  %d  failure: configuration, files, an error from the relay
  %d  usage: unknown command or flag, bad flag value
  %d  permanent: the relay cannot be used as configured (TLS port dialed
     with tcp://, plaintext port with tcps://, certificate refused or not
     trusted, protocol version, not a relay at all); retrying will not help
  %d  incomplete: --timeout passed before the work was done, or a bench
     run delivered less than it was asked`,
	exitOK, exitFailure, exitUsage, exitPermanent, exitIncomplete)

// errIncomplete marks work that ran but did not finish what was asked.
var errIncomplete = errors.New("incomplete")

// exitCodeOf is the exit code for a command's error.
func exitCodeOf(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case agent.IsPermanent(err):
		return exitPermanent
	case errors.Is(err, errIncomplete), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return exitIncomplete
	}
	return exitFailure
}

// explained is an error whose text says what to do, in one line, over
// the error it explains (kept for errors.Is and errors.As).
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }
