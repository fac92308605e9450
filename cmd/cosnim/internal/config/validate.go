package config

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/relay"
	"github.com/cosnim/relays/transport/tcp"
)

// validate checks f after decoding, fills in derived fields and resolves
// file names against dir.
func (d *decoder) validate(f *File, dir string) {
	for _, name := range f.RelayNames() {
		r := f.Relays[name]
		p := "relays." + name
		d.validateClient(&r.Client, p+".client", dir)
		d.validateServer(&r.Server, p+".server", dir)
	}
	for _, name := range f.RelayNames() {
		d.resolveDrainAlternates(f, name)
	}
	d.checkRelayRef(f, f.Continuum.Relay, "continuum.relay")
	for _, hub := range sortedKeys(f.CapsuleHubs) {
		d.checkRelayRef(f, f.CapsuleHubs[hub].Relay, "capsule_hubs."+hub+".relay")
	}
}

func (d *decoder) validateClient(c *Client, p, dir string) {
	addr, tls, ok := d.parseRelayURL(c.URL, p+".url", false)
	c.Address, c.TLS = addr, tls
	if ok && !tls {
		d.refuse(p, "ca_cert_file", c.CACertFile, "tcps://")
		d.refuse(p, "cert_file", c.CertFile, "tcps://")
		d.refuse(p, "key_file", c.KeyFile, "tcps://")
		d.refuse(p, "server_name", c.ServerName, "tcps://")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		if c.CertFile == "" {
			d.failAt(p+".key_file", newProblem(ErrRequired, "key_file is set but cert_file is not; set both or neither"))
		} else {
			d.failAt(p+".cert_file", newProblem(ErrRequired, "cert_file is set but key_file is not; set both or neither"))
		}
	}
	c.CACertFile = d.checkFile(c.CACertFile, p+".ca_cert_file", dir)
	c.CertFile = d.checkFile(c.CertFile, p+".cert_file", dir)
	c.KeyFile = d.checkFile(c.KeyFile, p+".key_file", dir)
	d.positive(c.ConnectTimeout, p+".connect_timeout")
	d.positive(c.BackoffMin, p+".backoff_min")
	if c.BackoffMax < c.BackoffMin {
		d.failAt(p+".backoff_max", newProblem(ErrInvalid, "backoff_max (%v) is less than backoff_min (%v)", c.BackoffMax, c.BackoffMin))
	}
}

func (d *decoder) validateServer(s *Server, p, dir string) {
	addr, tls, ok := d.parseRelayURL(s.URL, p+".url", true)
	s.Address, s.TLS = addr, tls
	if ok && tls {
		if s.SSLCertFile == "" {
			d.failAt(p, newProblem(ErrRequired, "ssl_cert_file is required for a tcps:// url"))
		}
		if s.PrivateKeyFile == "" {
			d.failAt(p, newProblem(ErrRequired, "private_key_file is required for a tcps:// url"))
		}
	}
	if ok && !tls {
		d.refuse(p, "ssl_cert_file", s.SSLCertFile, "tcps://")
		d.refuse(p, "private_key_file", s.PrivateKeyFile, "tcps://")
		d.refuse(p, "client_ca_file", s.ClientCAFile, "tcps://")
		if s.TLSPostQuantum {
			d.refuse(p, "tls_post_quantum", "true", "tcps://")
		}
	}
	if len(s.AuthorizedClients) > 0 && s.ClientCAFile == "" {
		d.failAt(p+".authorized_clients", newProblem(ErrRequired, "authorized_clients requires client_ca_file (client certificates are only asked for when client_ca_file is set)"))
	}
	for i, a := range s.AuthorizedClients {
		n, err := normalizeAuthorized(a)
		if err != nil {
			d.failAt(p+".authorized_clients."+strconv.Itoa(i), err)
			continue
		}
		s.AuthorizedClients[i] = n
	}
	s.SSLCertFile = d.checkFile(s.SSLCertFile, p+".ssl_cert_file", dir)
	s.PrivateKeyFile = d.checkFile(s.PrivateKeyFile, p+".private_key_file", dir)
	s.ClientCAFile = d.checkFile(s.ClientCAFile, p+".client_ca_file", dir)
	if s.MetricsURL != "" {
		u, err := url.Parse(s.MetricsURL)
		if err != nil || u.Scheme != "http" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			d.failAt(p+".metrics_url", newProblem(ErrInvalid, "%q is not of the form http://HOST:PORT", s.MetricsURL))
		}
	}
	if s.DrainGrace < 0 {
		d.failAt(p+".drain_grace", newProblem(ErrInvalid, "must not be negative"))
	}
	d.validateLimits(s.Limits, p+".limits")
	d.validateBackbone(&s.Backbone, p+".backbone", dir)
}

// validateLimits applies the relay's own rules (relay.Config.Validate),
// so a file passes exactly when relay.New would take its limits. Unlike
// relay.New it applies no defaults first: a 0 in a file is an error, not
// "the default".
func (d *decoder) validateLimits(c relay.Config, p string) {
	err := c.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var le *relay.LimitError
		if errors.As(e, &le) && le.Key != "" {
			d.failAt(p+"."+le.Key, newProblem(ErrInvalid, "%s", le.Msg))
		} else {
			d.failAt(p, newProblem(ErrInvalid, "%v", e))
		}
	}
}

func (d *decoder) positive(v time.Duration, path string) {
	if v <= 0 {
		d.failAt(path, newProblem(ErrInvalid, "must be greater than 0"))
	}
}

// refuse reports key set on a section whose url does not use scheme.
func (d *decoder) refuse(p, key, v, scheme string) {
	if v != "" {
		d.failAt(p+"."+key, newProblem(ErrInvalid, "%s is only used with a %s url; use tcps:// or remove it", key, scheme))
	}
}

// parseRelayURL checks a tcp:// or tcps:// url by the rules of the driver
// that dials or listens on it (tcp.ParseURL, tcp.ParseListenURL) and
// returns HOST:PORT. A listening url may leave the host empty (all
// addresses).
func (d *decoder) parseRelayURL(raw, path string, listen bool) (addr string, tls, ok bool) {
	if raw == "" {
		d.failAt(path, newProblem(ErrRequired, "url is required (tcp://HOST:PORT or tcps://HOST:PORT)"))
		return "", false, false
	}
	parse := tcp.ParseURL
	if listen {
		parse = tcp.ParseListenURL
	}
	scheme, addr, err := parse(raw)
	if err != nil {
		var ue *tcp.URLError
		if errors.As(err, &ue) {
			d.failAt(path, newProblem(ErrInvalid, "%q: %s", raw, ue.Reason))
		} else {
			d.failAt(path, newProblem(ErrInvalid, "%v", err))
		}
		return "", false, false
	}
	return addr, scheme == tcp.SchemeTCPS, true
}

// checkFile resolves name against dir and checks that it can be read.
// It returns the resolved name ("" stays "").
func (d *decoder) checkFile(name, path, dir string) string {
	if name == "" {
		return ""
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	// Stat before opening: opening a FIFO would block.
	if err := files.Check(name, files.MaxPEM); err != nil {
		if os.IsNotExist(err) {
			d.failAt(path, newProblem(ErrFileNotFound, "file not found: %s", name))
		} else {
			d.failAt(path, newProblem(ErrUnusableFile, "%v", err))
		}
		return name
	}
	fh, err := os.Open(name)
	if err != nil {
		d.failAt(path, newProblem(ErrFileNotFound, "cannot read file: %v", err))
		return name
	}
	fh.Close()
	return name
}

// normalizeAuthorized checks one authorized_clients entry and returns its
// canonical form: "sha256:" and lower-case hex without separators, or the
// subject with spaces around ',' and '=' removed.
func normalizeAuthorized(a string) (string, error) {
	a = strings.TrimSpace(a)
	if rest, ok := strings.CutPrefix(strings.ToLower(a), "sha256:"); ok {
		hex := strings.ReplaceAll(rest, ":", "")
		if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
			return "", newProblem(ErrInvalid, "%q: a fingerprint is sha256: followed by 64 hex digits", a)
		}
		return "sha256:" + hex, nil
	}
	parts := strings.Split(a, ",")
	var rdns pkix.RDNSequence
	for i, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return "", newProblem(ErrInvalid, `%q is neither a subject ("CN=name" or "CN=name,O=org") nor a "sha256:HEX" fingerprint`, a)
		}
		k = strings.ToUpper(k)
		oid, known := subjectOIDs[k]
		switch {
		case strings.ContainsAny(v, "*?"):
			return "", newProblem(ErrInvalid, "%q can never match: entries are compared exactly, without wildcards; list each name, or use a fingerprint", a)
		case !known:
			return "", newProblem(ErrInvalid, "%q can never match: a subject attribute is one of %s", a, strings.Join(sortedKeys(subjectOIDs), ", "))
		}
		parts[i] = k + "=" + v
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	n := strings.Join(parts, ",")
	if len(parts) == 1 && strings.HasPrefix(n, "CN=") {
		return n, nil // the common name alone (tcp.Allowed)
	}
	// A full subject matches only as crypto/x509 prints a certificate's
	// (tcp.Allowed): attributes in its order, each once, values escaped.
	var name pkix.Name
	name.FillFromRDNSequence(&rdns)
	if s := name.String(); s != n {
		return "", newProblem(ErrInvalid, "%q can never match: a certificate with these attributes has the subject %q", a, s)
	}
	return n, nil
}

// subjectOIDs are the attributes crypto/x509 prints by name in a subject;
// others print as dotted numbers and hex, which no entry is meant to hold.
var subjectOIDs = map[string]asn1.ObjectIdentifier{
	"CN": {2, 5, 4, 3}, "SERIALNUMBER": {2, 5, 4, 5}, "C": {2, 5, 4, 6}, "L": {2, 5, 4, 7},
	"ST": {2, 5, 4, 8}, "STREET": {2, 5, 4, 9}, "O": {2, 5, 4, 10}, "OU": {2, 5, 4, 11}, "POSTALCODE": {2, 5, 4, 17},
}

// resolveDrainAlternates turns relay name's server.drain_alternates (names
// of other relays) into their client URLs, port included.
func (d *decoder) resolveDrainAlternates(f *File, name string) {
	r := f.Relays[name]
	p := "relays." + name + ".server.drain_alternates"
	defined := f.RelayNames()
	r.Server.DrainURLs = nil
	for i, alt := range r.Server.DrainAlternates {
		at := joinPath(p, strconv.Itoa(i))
		other, ok := f.Relays[alt]
		switch {
		case alt == name:
			d.failAt(at, newProblem(ErrInvalid, "relay %q names itself as an alternate", alt))
		case !ok:
			msg := fmt.Sprintf("relay %q is not defined (%s)", alt, definedList(defined))
			if c := closest(alt, defined); c != "" {
				msg += fmt.Sprintf("; did you mean `%s`?", c)
			}
			d.failAt(at, newProblem(ErrUndefinedRelay, "%s", msg))
		case other.Client.Address != "":
			scheme := tcp.SchemeTCP
			if other.Client.TLS {
				scheme = tcp.SchemeTCPS
			}
			r.Server.DrainURLs = append(r.Server.DrainURLs, scheme+"://"+other.Client.Address)
		}
	}
	f.Relays[name] = r
}
