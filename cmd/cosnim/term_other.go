//go:build !linux

package main

import "io"

// isTerminal reports false off Linux: progress is then written as plain
// lines, which is right for logs and harmless on a terminal.
func isTerminal(io.Writer) bool { return false }
