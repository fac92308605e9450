package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is what a Target reports about the relay's resources. Fields a
// target cannot measure are zero.
type Usage struct {
	CPU       time.Duration `json:"cpu_ns"`           // user + system time since the process started
	RSS       int64         `json:"rss_bytes"`        // resident set now
	PeakRSS   int64         `json:"peak_rss_bytes"`   // VmHWM
	HeapStack int64         `json:"heap_stack_bytes"` // live heap + goroutine stacks after a GC (in-process and spawned)
	Goroutine int           `json:"goroutines"`
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux platform Go supports.
const clockTicks = 100

// procUsage reads CPU and RSS of process pid from /proc.
func procUsage(pid int) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, fmt.Errorf("bench: cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		line := sc.Text()
		field := func(name string) (int64, bool) {
			if !strings.HasPrefix(line, name) {
				return 0, false
			}
			kb, err := strconv.ParseInt(strings.Fields(line[len(name):])[0], 10, 64)
			return kb << 10, err == nil
		}
		if v, ok := field("VmRSS:"); ok {
			u.RSS = v
		}
		if v, ok := field("VmHWM:"); ok {
			u.PeakRSS = v
		}
	}
	return u, sc.Err()
}

// selfUsage measures this process: CPU from getrusage, RSS from /proc, and
// heap and stacks after a GC.
func selfUsage() Usage {
	u, _ := procUsage(os.Getpid())
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.HeapStack = int64(ms.HeapAlloc + ms.StackInuse)
	u.Goroutine = runtime.NumGoroutine()
	return u
}

// selfCPU is this process's user + system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
