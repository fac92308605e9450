package tcp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the relay port used when a URL names none.
const DefaultPort = "7420"

// Relay URL schemes.
const (
	SchemeTCP  = "tcp"  // plaintext
	SchemeTCPS = "tcps" // TLS
)

// ErrBadURL reports a relay URL that cannot be used.
var ErrBadURL = errors.New("transport: bad relay URL")

// ParseURL splits a relay URL such as "tcps://relay.example:7420" into its
// scheme ("tcp" or "tcps") and a host:port for net.Dial; the port
// defaults to 7420. Paths, queries, fragments and user info are refused.
func ParseURL(s string) (scheme, hostport string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w %q: %s", ErrBadURL, s, why)
	}
	if !strings.Contains(s, "://") {
		return bad("want tcp://HOST[:PORT] or tcps://HOST[:PORT]")
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme != SchemeTCP && scheme != SchemeTCPS {
		return bad(fmt.Sprintf("scheme %q is not tcp or tcps", u.Scheme))
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
	if host == "" {
		return bad("no host")
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return bad("empty port")
		}
		port = DefaultPort
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return bad(fmt.Sprintf("port %q is not a number from 1 to 65535", port))
	}
	return scheme, net.JoinHostPort(host, port), nil
}
