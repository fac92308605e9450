package tcp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/cosnim/relays/wire"
)

// DefaultPort is the relay port used when a URL names none; the protocol
// defines it (wire.DefaultPort).
const DefaultPort = wire.DefaultPort

// Relay URL schemes.
const (
	SchemeTCP  = "tcp"  // plaintext
	SchemeTCPS = "tcps" // TLS
)

// ErrBadURL reports a relay URL that cannot be used.
var ErrBadURL = errors.New("transport: bad relay URL")

// URLError is a relay URL that cannot be used, and why; it wraps ErrBadURL.
type URLError struct {
	URL    string // as given
	Reason string // e.g. "no host"
}

func (e *URLError) Error() string { return fmt.Sprintf("%v %q: %s", ErrBadURL, e.URL, e.Reason) }

// Unwrap makes errors.Is(err, ErrBadURL) hold.
func (e *URLError) Unwrap() error { return ErrBadURL }

// ParseURL splits a relay URL that a client dials, such as
// "tcps://relay.example:7420", into its scheme ("tcp" or "tcps") and a
// host:port for net.Dial. The host is required; the port is 1 to 65535
// and defaults to DefaultPort. Paths, queries, fragments and user info are
// refused. Errors are *URLError.
func ParseURL(s string) (scheme, hostport string, err error) {
	return parseURL(s, false)
}

// ParseListenURL is ParseURL for the URL a relay listens on,
// tcp://[HOST][:PORT]: an empty host means all addresses ("tcp://:7420")
// and port 0 a free port picked by the system.
func ParseListenURL(s string) (scheme, hostport string, err error) {
	return parseURL(s, true)
}

func parseURL(s string, listen bool) (scheme, hostport string, err error) {
	bad := func(format string, args ...any) (string, string, error) {
		return "", "", &URLError{URL: s, Reason: fmt.Sprintf(format, args...)}
	}
	if !strings.Contains(s, "://") {
		if listen {
			return bad("want tcp://[HOST][:PORT] or tcps://[HOST][:PORT]")
		}
		return bad("want tcp://HOST[:PORT] or tcps://HOST[:PORT]")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("%v", err)
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme != SchemeTCP && scheme != SchemeTCPS {
		return bad("scheme %q is not tcp or tcps", u.Scheme)
	}
	switch {
	case u.User != nil:
		return bad("user info is not allowed")
	case u.Path != "" && u.Path != "/":
		return bad("a path is not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return bad("a query is not allowed")
	case u.Fragment != "":
		return bad("a fragment is not allowed")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" && !listen {
		return bad("no host")
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return bad("empty port")
		}
		return scheme, net.JoinHostPort(host, strconv.Itoa(DefaultPort)), nil
	}
	lowest := 1
	if listen {
		lowest = 0
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < lowest || n > 65535 {
		return bad("port %q is not a number from %d to 65535", port, lowest)
	}
	return scheme, net.JoinHostPort(host, strconv.Itoa(n)), nil
}
