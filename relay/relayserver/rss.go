package relayserver

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// residentBytes reads the process's resident set from /proc (Linux), 0
// where it cannot.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// MemoryLimit is the Go runtime's soft memory limit for a relay process
// with memory budget budget, when GOMEMLIMIT does not set one: an eighth
// above the budget, so that the collector works harder before garbage
// takes the heap, and with it the resident set, far past what the budget
// counts (RSSFactor), less for small budgets so that the binary's
// resident code (fileRSS) has room, never below the budget.
func MemoryLimit(budget int64) int64 {
	return max(budget, min(budget+budget/8, int64(RSSFactor*float64(budget))-fileRSS-fileRSS/2))
}

// fileRSS is the binary's code and data resident under load (12 MiB idle,
// as measured from /proc's RssFile).
const fileRSS = 16 << 20

// RSSFactor is how far a relay's resident set may pass its memory budget:
// what the budget does not count (the heap's garbage, the runtime,
// goroutine stacks beyond the measured per-connection cost) stays within
// the rest. The hostile suite checks it against /proc under every attack.
const RSSFactor = 1.5

// sendBuffer is the kernel's send buffer for each accepted connection
// (doubled by Linux), instead of autotuning's up to 4 MiB: a member that
// stops reading then shows as slow in the relay's queue, where the budget
// counts it and its entries are merged, after a few hundred KiB rather
// than after the relay copied megabytes of frames for it.
const sendBuffer = 128 << 10

// sendBufferListener sets sendBuffer on the TCP connections it accepts.
type sendBufferListener struct{ net.Listener }

func (l sendBufferListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetWriteBuffer(sendBuffer)
	}
	return nc, err
}
