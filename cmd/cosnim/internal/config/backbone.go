package config

import (
	"errors"
	"strconv"
	"time"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/relay"
)

// Backbone is a relay's server.backbone section: the NATS servers that
// link the relays of a pool. Without url or urls there is no backbone.
type Backbone struct {
	// URL is one NATS server, nats://HOST[:PORT] or tls://HOST[:PORT];
	// URLs several (seeds of one cluster). One of the two, not both.
	URL  string   `mapstructure:"url"`
	URLs []string `mapstructure:"urls"`
	// CACertFile verifies the NATS servers; CertFile and KeyFile are this
	// relay's certificate for servers that verify clients (both or
	// neither). Any of them makes the connection use TLS.
	CACertFile string `mapstructure:"ca_cert_file"`
	CertFile   string `mapstructure:"cert_file"`
	KeyFile    string `mapstructure:"key_file"`
	// CredsFile is a NATS credentials file (user JWT and nkey seed);
	// NKeySeedFile an nkey seed alone; User and Password plain
	// credentials. At most one of the three.
	CredsFile    string `mapstructure:"creds_file"`
	NKeySeedFile string `mapstructure:"nkey_seed_file"`
	User         string `mapstructure:"user"`
	Password     string `mapstructure:"password"`
	// SubjectPrefix starts every subject the relay uses; relays of one
	// pool share it, and different pools on one NATS use different ones.
	// "" is the relay core's default (relay.DefaultBackbonePrefix,
	// "cosnim").
	SubjectPrefix string `mapstructure:"subject_prefix"`
	// RequestTimeout bounds a relay-to-relay request.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	// PoolKeyFile holds the pool key, shared by the pool's relays: with
	// it every backbone message is authenticated, and NATS users without
	// it can neither inject, forge nor get answers (POOLS.md).
	PoolKeyFile string `mapstructure:"pool_key_file"`

	// Servers is URL or URLs; empty when there is no backbone. Set by Load.
	Servers []string `mapstructure:"-"`
}

// Enabled reports whether the relay has a backbone.
func (b *Backbone) Enabled() bool { return len(b.Servers) > 0 }

// defaultBackbone is the backbone section's defaults (no backbone).
func defaultBackbone() Backbone {
	return Backbone{RequestTimeout: natsbus.DefaultRequestTimeout, SubjectPrefix: relay.DefaultBackbonePrefix}
}

// Options maps the section onto the NATS driver's options.
func (b *Backbone) Options() natsbus.Options {
	return natsbus.Options{
		URLs:           b.Servers,
		CACertFile:     b.CACertFile,
		CertFile:       b.CertFile,
		KeyFile:        b.KeyFile,
		CredsFile:      b.CredsFile,
		NKeySeedFile:   b.NKeySeedFile,
		User:           b.User,
		Password:       b.Password,
		RequestTimeout: b.RequestTimeout,
		PoolKeyFile:    b.PoolKeyFile,
	}
}

// validateBackbone checks server.backbone at p and resolves its files.
func (d *decoder) validateBackbone(b *Backbone, p, dir string) {
	switch {
	case b.URL != "" && len(b.URLs) > 0:
		d.failAt(p+".urls", newProblem(ErrInvalid, "url and urls are both set; use one"))
	case b.URL != "":
		b.Servers = []string{b.URL}
		d.backboneURL(b.URL, p+".url")
	case len(b.URLs) > 0:
		b.Servers = b.URLs
		for i, u := range b.URLs {
			d.backboneURL(u, p+".urls."+strconv.Itoa(i))
		}
	default:
		for _, k := range []struct{ key, v string }{
			{"ca_cert_file", b.CACertFile}, {"cert_file", b.CertFile}, {"key_file", b.KeyFile},
			{"creds_file", b.CredsFile}, {"nkey_seed_file", b.NKeySeedFile}, {"user", b.User},
			{"password", b.Password}, {"pool_key_file", b.PoolKeyFile},
		} {
			if k.v != "" {
				d.failAt(p+"."+k.key, newProblem(ErrRequired, "%s is set but the backbone has no url (or urls)", k.key))
			}
		}
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		if b.CertFile == "" {
			d.failAt(p+".key_file", newProblem(ErrRequired, "key_file is set but cert_file is not; set both or neither"))
		} else {
			d.failAt(p+".cert_file", newProblem(ErrRequired, "cert_file is set but key_file is not; set both or neither"))
		}
	}
	var ways []string
	if b.CredsFile != "" {
		ways = append(ways, "creds_file")
	}
	if b.NKeySeedFile != "" {
		ways = append(ways, "nkey_seed_file")
	}
	if b.User != "" {
		ways = append(ways, "user")
	}
	if len(ways) > 1 {
		d.failAt(p+"."+ways[1], newProblem(ErrInvalid, "%s and %s are both set; NATS takes one way to log in", ways[0], ways[1]))
	}
	if b.Password != "" && b.User == "" {
		d.failAt(p+".password", newProblem(ErrRequired, "password is set but user is not"))
	}
	if b.SubjectPrefix != "" {
		if err := relay.CheckBackbonePrefix(b.SubjectPrefix); err != nil {
			d.failAt(p+".subject_prefix", newProblem(ErrInvalid, "%v", err))
		}
	}
	d.positive(b.RequestTimeout, p+".request_timeout")
	b.CACertFile = d.checkFile(b.CACertFile, p+".ca_cert_file", dir)
	b.CertFile = d.checkFile(b.CertFile, p+".cert_file", dir)
	b.KeyFile = d.checkFile(b.KeyFile, p+".key_file", dir)
	b.CredsFile = d.checkFile(b.CredsFile, p+".creds_file", dir)
	b.NKeySeedFile = d.checkFile(b.NKeySeedFile, p+".nkey_seed_file", dir)
	b.PoolKeyFile = d.checkFile(b.PoolKeyFile, p+".pool_key_file", dir)
	if b.PoolKeyFile != "" {
		// A missing file is checkFile's to report.
		if _, err := natsbus.LoadPoolKey(b.PoolKeyFile); errors.Is(err, natsbus.ErrWeakPoolKey) {
			d.failAt(p+".pool_key_file", newProblem(ErrInvalid, "%v", err))
		}
	}
}

func (d *decoder) backboneURL(raw, path string) {
	if err := natsbus.CheckURL(raw); err != nil {
		d.failAt(path, newProblem(ErrInvalid, "%v", err))
	}
}

// checkBackbone parses the section's files for Check, with the helpers
// that check the relay's own TLS files.
func (d *decoder) checkBackbone(b *Backbone, p string) {
	d.checkCAs(b.CACertFile, p+".ca_cert_file")
	d.checkPair(b.CertFile, b.KeyFile, p+".cert_file")
	for _, k := range [][2]string{{p + ".creds_file", b.CredsFile}, {p + ".nkey_seed_file", b.NKeySeedFile}} {
		if k[1] == "" {
			continue
		}
		if err := natsbus.CheckKeyFile(k[1]); err != nil {
			d.failAt(k[0], newProblem(ErrBadPEM, "%v", err))
		}
	}
}

// backboneCertFiles lists the certificate files of server.backbone for
// CertDates, as key path and file.
func backboneCertFiles(b *Backbone, p string) [][2]string {
	return [][2]string{{p + ".ca_cert_file", b.CACertFile}, {p + ".cert_file", b.CertFile}}
}
