// Command cosnim runs and talks to Cosnim relays.
//
//	cosnim start relay RELAY_NAME   run a relay server
//	cosnim config check             validate the configuration
//	cosnim relay ping|watch|announce|bench|top RELAY_NAME
//	cosnim secret new               print a new continuum secret
//	cosnim sim                      run fault simulations
//
// The command tree is built in one place, newRootCmd in root.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code (see
// exitcodes.go). The error, if any, is printed once to stderr as
// "cosnim: ...".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) || !ee.reported {
		fmt.Fprintf(stderr, "cosnim: %v\n", err)
	}
	return exitCodeOf(err)
}

// exitError asks run for a given exit code; reported means the command has
// already told the user (for example in --json output) and run prints nothing.
type exitError struct {
	code     int
	reported bool
	err      error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
