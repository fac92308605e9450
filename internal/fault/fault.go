// Package fault is the cores' view of failpoints: named points in
// production code that a simulation turns on to break one behaviour on
// purpose, so that a checker can show it notices.
//
// A core is handed a Set in its Config; nil is the release setting, and
// each check then costs one nil test. The registry the simulator uses
// (internal/fault/registry) lives apart so that cores link nothing of it.
// Failpoint names are constants next to the code that checks them.
package fault

// Set reports which failpoints are on.
type Set interface {
	// Hit reports whether the named point is on, and its value.
	Hit(name string) (value any, on bool)
}

// On reports whether the named point is on in s (false for a nil Set).
func On(s Set, name string) bool {
	_, on := Hit(s, name)
	return on
}

// Hit is s.Hit(name), false for a nil Set.
func Hit(s Set, name string) (value any, on bool) {
	if s == nil {
		return nil, false
	}
	return s.Hit(name)
}
