package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cosnim/relays/relay"
)

// ByteSize is a number of bytes. In a file it is an integer or a string
// with a unit: "1100", "64KiB", "8MiB", "1GiB", "10KB" (KB, MB, GB are
// powers of 1000; KiB, MiB, GiB powers of 1024; "B" is bytes).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// longest suffixes first so "KiB" is not read as "B"
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// ParseByteSize reads a size such as "64KiB" or "1100".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a byte size (examples: 1100, 64KiB, 8MiB, 1GiB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// String writes the size with the largest binary unit that divides it,
// as relay.Bytes does.
func (b ByteSize) String() string { return relay.Bytes.Format(int64(b)) }

// durationUnits are the spelled-out units of the Cosnim documentation's
// DURATION format ("30.5 minutes"), beside Go's own ("1m30s").
var durationUnits = map[string]time.Duration{
	"us": time.Microsecond, "microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"ms": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "wk": 7 * 24 * time.Hour, "wks": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// ParseDuration reads a Go duration ("15s", "1m30s", "100ms"), a number
// and a spelled-out unit ("30.5 minutes", "2 hours"), or a bare number of
// seconds ("15"), as the Cosnim documentation allows.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	num, unit := t, "s"
	if i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); i >= 0 {
		num, unit = strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	}
	mult, ok := durationUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || math.IsInf(f, 0) || f*float64(mult) > math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a duration (examples: 15s, 100ms, 1m30s, \"30.5 minutes\")", s)
	}
	return time.Duration(f * float64(mult)), nil
}
