package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cosnim/relays/internal/editdist"
)

// Sentinel errors carried (wrapped) by [*Error]; test with errors.Is.
var (
	// ErrUnknownKey: a key that is not part of the schema.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrDuplicateKey: a key given twice (perhaps once with '-' and once with '_').
	ErrDuplicateKey = errors.New("config: duplicate key")
	// ErrWrongType: a value of the wrong kind (a string where a number is due, ...).
	ErrWrongType = errors.New("config: wrong type")
	// ErrInvalid: a value of the right kind but outside what is allowed.
	ErrInvalid = errors.New("config: invalid value")
	// ErrRequired: a key that must be set is missing.
	ErrRequired = errors.New("config: required key missing")
	// ErrFileNotFound: a named file does not exist or cannot be read.
	ErrFileNotFound = errors.New("config: file not found")
	// ErrUnusableFile: a named file that is not a regular file (a
	// device, FIFO or directory) or is over its size cap (package files).
	ErrUnusableFile = errors.New("config: unusable file")
	// ErrUndefinedRelay: a relay name that the relays section does not define.
	ErrUndefinedRelay = errors.New("config: undefined relay")
	// ErrTooManyNodes: the file expands to more than MaxNodes YAML nodes
	// through aliases and merge keys.
	ErrTooManyNodes = errors.New("config: too many YAML nodes")
	// ErrSyntax: the file is not valid YAML.
	ErrSyntax = errors.New("config: YAML syntax error")
)

// Error is one problem found in a configuration file.
type Error struct {
	File string // the file as named to Load, or "(embedded default)"
	Line int    // 1-based; 0 when unknown
	Path string // key path such as "relays.main.server.ssl_cert_file"; "" for the whole file
	Err  error  // wraps one of the sentinel errors above
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one file, ordered by line.
// Load returns it (never empty) when the file is not valid.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap lets errors.Is and errors.As look at each problem.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Path < es[j].Path
	})
	return es
}

// problem wraps sentinel with a message: problem(ErrInvalid, "must be > 0").
type problem struct {
	sentinel error
	msg      string
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.sentinel }

func newProblem(sentinel error, format string, args ...any) error {
	return &problem{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// unknownKey builds the message for key, suggesting the closest of valid.
func unknownKey(key string, valid []string) error {
	msg := fmt.Sprintf("unknown key %q", key)
	if s := closest(key, valid); s != "" {
		msg += fmt.Sprintf("; did you mean `%s`?", s)
	} else if len(valid) > 0 {
		msg += fmt.Sprintf(" (valid keys: %s)", strings.Join(valid, ", "))
	}
	return newProblem(ErrUnknownKey, "%s", msg)
}

// closest returns the candidate nearest to s by Levenshtein distance, or ""
// when none is near enough to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editdist.Levenshtein(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}
