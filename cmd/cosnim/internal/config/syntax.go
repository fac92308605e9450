package config

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxBisectLines and maxBisectBytes bound the search for a syntax error's
// line: each step parses a prefix of the file, so a long file with its
// mistake far below yaml's line would cost a quadratic number of bytes.
// Past either bound yaml's own line is kept.
const (
	maxBisectLines = 5000
	maxBisectBytes = 2 << 20 // bytes parsed over all steps
)

// yamlLine matches the "line N: " that yaml.v3 puts in its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// syntaxError turns a yaml.v3 parse error into one message and one line.
//
// yaml.v3 names the line where the enclosing block began, not the line of
// the mistake (a misindented key on line 5 is reported at line 2), and
// repeats it in the message. The mistake is on the first line whose
// prefix of the file fails to parse with the same message, so that prefix
// is searched for, from yaml's line on (the mistake is not above the block
// it is in); if none matches, yaml's own line is kept.
func syntaxError(data []byte, err error) (line int, msg string) {
	n, msg := splitYAMLError(err)
	line, _ = strconv.Atoi(n)
	if l := firstFailingLine(data, msg, line); l > 0 {
		line = l
	}
	return line, msg
}

// firstFailingLine returns the 1-based number of the first line from line
// from on whose prefix of data fails to parse with message msg, or 0.
func firstFailingLine(data []byte, msg string, from int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxBisectLines {
		return 0
	}
	var prefix []byte
	parsed := 0
	for i, l := range lines {
		prefix = append(prefix, l...)
		if i+1 < from {
			continue
		}
		if parsed += len(prefix); parsed > maxBisectBytes {
			return 0
		}
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err == nil {
			continue
		}
		if _, m := splitYAMLError(err); m == msg {
			return i + 1
		}
		// A prefix can fail only because it was cut (an open flow
		// collection, say); keep looking.
	}
	return 0
}

// splitYAMLError separates yaml.v3's "line N: " (N, or "") from its message.
func splitYAMLError(err error) (line, msg string) {
	s := err.Error()
	if m := yamlLine.FindStringSubmatch(s); m != nil {
		return m[1], s[len(m[0]):]
	}
	return "", strings.TrimPrefix(s, "yaml: ")
}
