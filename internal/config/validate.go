package config

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
	d.checkRelayRef(f, f.Continuum.Relay, "continuum.relay")
	for _, hub := range sortedKeys(f.CapsuleHubs) {
		d.checkRelayRef(f, f.CapsuleHubs[hub].Relay, "capsule_hubs."+hub+".relay")
	}
}

func (d *decoder) checkRelayRef(f *File, name, path string) {
	if name == "" {
		return
	}
	if _, ok := f.Relays[name]; !ok {
		d.failAt(path, newProblem(ErrUndefinedRelay, "relay %q is not defined (%s)", name, definedList(f.RelayNames())))
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
	d.validateLimits(&s.Limits, p+".limits")
}

func (d *decoder) validateLimits(l *Limits, p string) {
	ints := []struct {
		key string
		v   int64
	}{
		{"max_connections", int64(l.MaxConnections)},
		{"handshake_timeout", int64(l.HandshakeTimeout)},
		{"heartbeat_interval", int64(l.HeartbeatInterval)},
		{"idle_timeout", int64(l.IdleTimeout)},
		{"max_frame_size", int64(l.MaxFrameSize)},
		{"max_channels_per_connection", int64(l.MaxChannelsPerConnection)},
		{"max_entry_size", int64(l.MaxEntrySize)},
		{"cache_entries", int64(l.CacheEntries)},
		{"channel_idle_timeout", int64(l.ChannelIdleTimeout)},
		{"pending_entries", int64(l.PendingEntries)},
		{"frame_rate", int64(l.FrameRate)},
		{"byte_rate", int64(l.ByteRate)},
		{"memory_budget", int64(l.MemoryBudget)},
		{"accept_rate", int64(l.AcceptRate)},
	}
	for _, x := range ints {
		if x.v <= 0 {
			d.failAt(p+"."+x.key, newProblem(ErrInvalid, "must be greater than 0"))
		}
	}
	if l.HeartbeatInterval > 0 && l.IdleTimeout <= l.HeartbeatInterval {
		d.failAt(p+".idle_timeout", newProblem(ErrInvalid, "idle_timeout (%v) must be longer than heartbeat_interval (%v)", l.IdleTimeout, l.HeartbeatInterval))
	}
	if l.MaxEntrySize > 0 && l.MaxEntrySize >= l.MaxFrameSize {
		d.failAt(p+".max_entry_size", newProblem(ErrInvalid, "max_entry_size (%v) must be smaller than max_frame_size (%v)", l.MaxEntrySize, l.MaxFrameSize))
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

// parseRelayURL checks a tcp:// or tcps:// url and returns HOST:PORT.
// A listening url may leave the host empty (all addresses).
func (d *decoder) parseRelayURL(raw, path string, listen bool) (addr string, tls, ok bool) {
	if raw == "" {
		d.failAt(path, newProblem(ErrRequired, "url is required (tcp://HOST:PORT or tcps://HOST:PORT)"))
		return "", false, false
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "tcps") || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		d.failAt(path, newProblem(ErrInvalid, "%q is not of the form tcp://HOST[:PORT] or tcps://HOST[:PORT]", raw))
		return "", false, false
	}
	host, port := u.Hostname(), u.Port()
	if host == "" && !listen {
		d.failAt(path, newProblem(ErrInvalid, "%q names no host", raw))
		return "", false, false
	}
	if port == "" {
		port = strconv.Itoa(DefaultPort)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		d.failAt(path, newProblem(ErrInvalid, "%q has an invalid port", raw))
		return "", false, false
	}
	return net.JoinHostPort(host, port), u.Scheme == "tcps", true
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
	fh, err := os.Open(name)
	if err != nil {
		if os.IsNotExist(err) {
			d.failAt(path, newProblem(ErrFileNotFound, "file not found: %s", name))
		} else {
			d.failAt(path, newProblem(ErrFileNotFound, "cannot read file: %v", err))
		}
		return name
	}
	st, err := fh.Stat()
	fh.Close()
	if err == nil && st.IsDir() {
		d.failAt(path, newProblem(ErrFileNotFound, "%s is a directory, not a file", name))
	}
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
	for i, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return "", newProblem(ErrInvalid, `%q is neither a subject ("CN=name" or "CN=name,O=org") nor a "sha256:HEX" fingerprint`, a)
		}
		parts[i] = strings.ToUpper(k) + "=" + v
	}
	return strings.Join(parts, ","), nil
}
