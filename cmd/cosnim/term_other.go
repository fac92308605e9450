//go:build !linux

package main

import (
	"errors"
	"io"
	"os"
)

// isTerminal reports false off Linux: progress is then written as plain
// lines, which is right for logs and harmless on a terminal.
func isTerminal(io.Writer) bool { return false }

// keysMode is not available off Linux; top then quits on Ctrl-C only.
func keysMode(*os.File) (func(), error) { return nil, errors.ErrUnsupported }
