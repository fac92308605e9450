// Package defaults fills in the options a caller left unset, by one rule for
// each kind of option, so that every package defaults them alike: a nil
// logger discards, a number that is not positive takes its default.
package defaults
