package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cosnim/relays/client"
)

// RelayRef is a relay parameter (continuum.relay, capsule_hubs.HUB.relay).
// It is written in one of three forms:
//
//	relay: east-1                    # one relay
//	relay: [east-1, east-2, east-3]  # a pool
//	relay: {pool: [east-1, east-2], homes: 1, hysteresis: 30s}
//
// Every name must be defined in the relays section, once.
type RelayRef struct {
	// Pool names the relays; one name for a single relay, none for no relay.
	Pool []string `mapstructure:"pool"`
	// Homes is how many relays of the pool each hub is joined on; 0 means
	// client.DefaultHomes(len(Pool)). Between 1 and len(Pool).
	Homes int `mapstructure:"homes"`
	// Hysteresis is how long a preferred relay must stay connected before
	// hubs move back to it; 0 means client.DefaultHysteresis.
	Hysteresis time.Duration `mapstructure:"hysteresis"`
}

// IsZero reports a parameter naming no relay.
func (r RelayRef) IsZero() bool { return len(r.Pool) == 0 }

// Has reports whether the parameter names relay name.
func (r RelayRef) Has(name string) bool { return slices.Contains(r.Pool, name) }

// HomesOrDefault is Homes, or its default for the pool's size.
func (r RelayRef) HomesOrDefault() int {
	if r.Homes > 0 {
		return r.Homes
	}
	return client.DefaultHomes(len(r.Pool))
}

// HysteresisOrDefault is Hysteresis, or client.DefaultHysteresis.
func (r RelayRef) HysteresisOrDefault() time.Duration {
	if r.Hysteresis > 0 {
		return r.Hysteresis
	}
	return client.DefaultHysteresis
}

// String writes the parameter as its shortest form would.
func (r RelayRef) String() string {
	if len(r.Pool) == 1 && r.Homes == 0 && r.Hysteresis == 0 {
		return r.Pool[0]
	}
	return "[" + strings.Join(r.Pool, ", ") + "]"
}

// HubRelay is the relay parameter that applies to hub: its own, else the
// continuum's.
func (f *File) HubRelay(hub string) RelayRef {
	if h, ok := f.CapsuleHubs[hub]; ok && !h.Relay.IsZero() {
		return h.Relay
	}
	return f.Continuum.Relay
}

var relayRefType = reflect.TypeFor[RelayRef]()

// walkRelayRef turns the name and list forms of a relay parameter into
// the mapping form; ok is false for a mapping, which walk decodes as the
// struct it is.
func (d *decoder) walkRelayRef(n *yaml.Node, path string) (v any, ok bool) {
	name := func(c *yaml.Node, p string) any {
		if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" {
			d.fail(c.Line, p, newProblem(ErrWrongType, "expected a relay name, got %s", describe(c)))
			return nil
		}
		return c.Value
	}
	switch n.Kind {
	case yaml.ScalarNode:
		d.lines[path] = n.Line
		if s := name(n, path); s != nil {
			return map[string]any{"pool": []any{s}}, true
		}
		return nil, true
	case yaml.SequenceNode:
		names := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			p := joinPath(path, fmt.Sprint(i))
			d.lines[p] = c.Line
			if s := name(c, p); s != nil {
				names = append(names, s)
			}
		}
		return map[string]any{"pool": names}, true
	}
	return nil, false
}

// checkRelayRef checks a relay parameter at path against f's relays.
func (d *decoder) checkRelayRef(f *File, r RelayRef, path string) {
	_, mapping := d.lines[joinPath(path, "pool")]
	at := path // where the names are
	if mapping {
		at = joinPath(path, "pool")
		if len(r.Pool) == 0 {
			d.failAt(at, newProblem(ErrRequired, "pool names no relay"))
			return
		}
	}
	if len(r.Pool) > client.MaxPoolRelays {
		d.failAt(at, newProblem(ErrInvalid, "a pool of %d relays; at most %d", len(r.Pool), client.MaxPoolRelays))
	}
	defined := f.RelayNames()
	for i, name := range r.Pool {
		p := at
		if _, listed := d.lines[joinPath(at, "0")]; listed {
			p = joinPath(at, fmt.Sprint(i))
		}
		if j := slices.Index(r.Pool[:i], name); j >= 0 {
			d.failAt(p, newProblem(ErrInvalid, "relay %q is listed twice (first at line %d)", name, d.lineOf(joinPath(at, fmt.Sprint(j)))))
			continue
		}
		if _, ok := f.Relays[name]; !ok {
			msg := fmt.Sprintf("relay %q is not defined (%s)", name, definedList(defined))
			if c := closest(name, defined); c != "" {
				msg += fmt.Sprintf("; did you mean `%s`?", c)
			}
			d.failAt(p, newProblem(ErrUndefinedRelay, "%s", msg))
		}
	}
	if _, set := d.lines[joinPath(path, "homes")]; set && (r.Homes < 1 || r.Homes > len(r.Pool)) {
		d.failAt(joinPath(path, "homes"), newProblem(ErrInvalid, "homes is %d; it must be between 1 and the pool's %d relays", r.Homes, len(r.Pool)))
	}
	if r.Hysteresis < 0 {
		d.failAt(joinPath(path, "hysteresis"), newProblem(ErrInvalid, "hysteresis must not be negative"))
	}
	d.checkPoolBackbone(f, r, at)
}

// checkPoolBackbone checks that the relays of a pool share one backbone:
// all of them or none name one, all on the same subject prefix (relays on
// different prefixes never hear each other). Their server lists may
// differ: each may name its nearest NATS node first.
func (d *decoder) checkPoolBackbone(f *File, r RelayRef, at string) {
	var with, without []string
	prefixes := map[string][]string{}
	for _, name := range r.Pool {
		rel, ok := f.Relays[name]
		if !ok {
			continue // reported above
		}
		if b := rel.Server.Backbone; b.Enabled() {
			with = append(with, name)
			prefixes[b.SubjectPrefix] = append(prefixes[b.SubjectPrefix], name)
		} else {
			without = append(without, name)
		}
	}
	switch {
	case len(with) > 0 && len(without) > 0:
		d.failAt(at, newProblem(ErrInvalid, "relays of one pool share one backbone: %s name one (server.backbone), %s do not",
			strings.Join(with, ", "), strings.Join(without, ", ")))
	case len(prefixes) > 1:
		var parts []string
		for _, p := range sortedKeys(prefixes) {
			parts = append(parts, fmt.Sprintf("%s on %q", strings.Join(prefixes[p], ", "), p))
		}
		d.failAt(at, newProblem(ErrInvalid, "relays of one pool share one backbone subject_prefix: %s", strings.Join(parts, "; ")))
	}
}
