package relay

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cosnim/relays/wire"
)

// TestLimitTableCoversConfig fails when a limit field of Config has no row
// in the table (HighWater aside), or two rows share a field or a key.
func TestLimitTableCoversConfig(t *testing.T) {
	rows := map[string]string{} // Config field → table key
	keys, wires := map[string]bool{}, map[wire.LimitKey]bool{}
	for _, l := range Limits() {
		if keys[l.Key] || wires[l.Wire] {
			t.Errorf("%s: key or wire key %v used twice", l.Key, l.Wire)
		}
		keys[l.Key], wires[l.Wire] = true, true
		var c Config
		l.Set(&c, 12345)
		if got := l.Get(c); got != 12345 {
			t.Errorf("%s: Get after Set(12345) = %d", l.Key, got)
		}
		v := reflect.ValueOf(c)
		for i := range v.NumField() {
			if !v.Field(i).IsZero() {
				name := v.Type().Field(i).Name
				if prev, dup := rows[name]; dup {
					t.Errorf("field %s is both %s and %s", name, prev, l.Key)
				}
				rows[name] = l.Key
			}
		}
	}
	ct := reflect.TypeFor[Config]()
	for f := range ct.Fields() {
		k := f.Type.Kind()
		// HighWater is not configurable; ConnBytes is a driver's measure,
		// not a limit; BackboneAntiEntropy is a timing between relays,
		// not advertised to clients (DefaultBackboneAntiEntropy).
		// BackboneBytes is the backbone driver's fixed share of memory.
		if f.Name == "HighWater" || f.Name == "ConnBytes" || f.Name == "BackboneBytes" || f.Name == "BackboneAntiEntropy" || k != reflect.Int && k != reflect.Int64 {
			continue
		}
		if _, ok := rows[f.Name]; !ok {
			t.Errorf("Config.%s has no row in the limit table", f.Name)
		}
	}
}

func TestDefaultConfigFollowsTable(t *testing.T) {
	d := DefaultConfig()
	for _, l := range Limits() {
		if got := l.Get(d); got != l.Default {
			t.Errorf("%s: DefaultConfig has %d, table says %d", l.Key, got, l.Default)
		}
	}
	if d.HighWater != DefaultHighWater {
		t.Errorf("HighWater = %d, want %d", d.HighWater, DefaultHighWater)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if diff := cmp.Diff(d, Config{}.WithDefaults()); diff != "" {
		t.Errorf("Config{}.WithDefaults() differs from DefaultConfig (-want +got):\n%s", diff)
	}
	kept := Config{MaxChannels: 3, IdleTimeout: time.Hour, HighWater: 7}.WithDefaults()
	if kept.MaxChannels != 3 || kept.IdleTimeout != time.Hour || kept.HighWater != 7 || kept.CacheEntries != d.CacheEntries {
		t.Errorf("WithDefaults replaced set values or missed a zero: %+v", kept)
	}
}

// TestValidateRules breaks each rule of the table in turn, starting from
// the defaults, and wants a *LimitError naming that limit.
func TestValidateRules(t *testing.T) {
	type tc struct {
		name string
		set  func(*Config)
		key  string // "" for accepted
	}
	var tests []tc
	for _, l := range Limits() {
		below := l.Min - 1
		if below == 0 {
			below = -1 // zero means "the default" to New
		}
		tests = append(tests, tc{l.Key + " below min", func(c *Config) { l.Set(c, below) }, l.Key})
		if b := l.Bound; b != nil && b.Op != AtMost {
			continue // its minimum alone is below its bound
		}
		tests = append(tests, tc{l.Key + " at min", func(c *Config) {
			l.Set(c, l.Min)
			if l.Key == "max_frame_size" {
				c.MaxEntrySize = int(l.Min) - 64 // still within its bound
			}
		}, ""})
	}
	tests = append(tests,
		tc{"entry fills the frame but its header", func(c *Config) { c.MaxEntrySize = c.MaxFrameSize - 64 }, ""},
		tc{"entry leaves less than 64 bytes of header", func(c *Config) { c.MaxEntrySize = c.MaxFrameSize - 63 }, "max_entry_size"},
		tc{"idle equal to heartbeat", func(c *Config) { c.IdleTimeout = c.HeartbeatInterval }, "idle_timeout"},
		tc{"idle just above heartbeat", func(c *Config) { c.IdleTimeout = c.HeartbeatInterval + 1 }, ""},
		tc{"byte rate below a frame", func(c *Config) { c.ByteRate = c.MaxFrameSize - 1 }, "byte_rate"},
		tc{"byte rate one frame", func(c *Config) { c.ByteRate = c.MaxFrameSize }, ""},
		tc{"high water", func(c *Config) { c.HighWater = -1 }, "-"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrBadLimit) {
				t.Fatalf("Validate() = %v, want a *LimitError", err)
			}
			if want := tt.key; want != "-" && le.Key != want {
				t.Errorf("error %v names %q, want %q", err, le.Key, want)
			}
			if _, err := New(c, rand.New(rand.NewPCG(1, 1))); err == nil {
				t.Errorf("New accepted what Validate refused")
			}
		})
	}
}

func TestWelcomeLimitsFollowTable(t *testing.T) {
	c := DefaultConfig()
	c.HeartbeatInterval = 1500 * time.Millisecond
	c.MemoryBudget = 1 << 40
	got := map[wire.LimitKey]uint64{}
	for _, l := range c.limits() {
		got[l.Key] = l.Value
	}
	want := map[wire.LimitKey]uint64{}
	for _, l := range Limits() {
		v := uint64(l.Get(c))
		if l.Unit == Duration {
			v = uint64(time.Duration(l.Get(c)) / time.Millisecond)
		}
		want[l.Wire] = v
	}
	if want[wire.LimitHeartbeatMillis] != 1500 || want[wire.LimitMemoryBudget] != 1<<40 {
		t.Fatalf("want %v: durations not in milliseconds or values not from c", want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Welcome limits (-want +got):\n%s", diff)
	}
	for k := wire.LimitMaxFrameSize; k <= wire.LimitChannelIdleMillis; k++ {
		if _, ok := got[k]; !ok {
			t.Errorf("wire limit %v is in no row of the table", k)
		}
	}
}

func TestLimitRuleText(t *testing.T) {
	tests := map[string]string{
		"max_connections": "greater than 0",
		"max_frame_size":  "at least 1KiB",
		"max_entry_size":  "greater than 0, at most max_frame_size minus 64",
		"idle_timeout":    "greater than 0, greater than heartbeat_interval",
		"byte_rate":       "greater than 0, at least max_frame_size",
	}
	for key, want := range tests {
		l, ok := LimitByKey(key)
		if !ok {
			t.Fatalf("no limit %q", key)
		}
		if got := l.Rule(); got != want {
			t.Errorf("%s: Rule() = %q, want %q", key, got, want)
		}
	}
}
