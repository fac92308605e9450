package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/transport/tcp"
)

// ExpiryWarning is how long before a certificate's end it is warned
// about (tcp.ExpiryWarning: the relay warns on reload alike).
const ExpiryWarning = tcp.ExpiryWarning

// Sentinels of CertDates.
var (
	// ErrCertExpired: a certificate past its NotAfter or before its NotBefore.
	ErrCertExpired = errors.New("config: certificate expired or not yet valid")
	// ErrCertExpiring: a certificate that ends within ExpiryWarning (a warning).
	ErrCertExpiring = errors.New("config: certificate expires soon")
)

// Sections selects the sections of a relay whose certificates CertDates
// looks at.
type Sections uint8

// The sections of a relay.
const (
	ClientSection Sections = 1 << iota // ca_cert_file, cert_file
	ServerSection                      // ssl_cert_file, client_ca_file
)

// CertDates checks the validity period of every certificate in the files
// that the sections s of the named relays (every relay when relays is
// empty) name, at now. A certificate that ends within ExpiryWarning is a
// warning; one that has ended or not yet begun is an error (Errors).
// Files that cannot be read or parsed are left to Check.
func CertDates(f *File, now time.Time, relays []string, s Sections) (warnings Errors, err error) {
	if len(relays) == 0 {
		relays = f.RelayNames()
	}
	d := &decoder{name: f.Name(), lines: f.lines}
	warn := &decoder{name: f.Name(), lines: f.lines}
	for _, name := range relays {
		r := f.Relays[name]
		if r == nil {
			continue
		}
		p := "relays." + name
		var files [][2]string // key path, file
		if s&ClientSection != 0 {
			files = append(files, [2]string{p + ".client.ca_cert_file", r.Client.CACertFile}, [2]string{p + ".client.cert_file", r.Client.CertFile})
		}
		if s&ServerSection != 0 {
			files = append(files, [2]string{p + ".server.ssl_cert_file", r.Server.SSLCertFile}, [2]string{p + ".server.client_ca_file", r.Server.ClientCAFile})
			files = append(files, backboneCertFiles(&r.Server.Backbone, p+".server.backbone")...)
		}
		for _, kf := range files {
			if kf[1] == "" {
				continue
			}
			for _, c := range fileCerts(kf[1]) {
				switch {
				case now.After(c.NotAfter):
					d.failAt(kf[0], newProblem(ErrCertExpired, "certificate %q in %s expired on %s", c.Subject.String(), kf[1], certDate(c.NotAfter)))
				case now.Before(c.NotBefore):
					d.failAt(kf[0], newProblem(ErrCertExpired, "certificate %q in %s is not valid until %s (check this machine's clock)", c.Subject.String(), kf[1], certDate(c.NotBefore)))
				case c.NotAfter.Sub(now) < ExpiryWarning:
					days := int(c.NotAfter.Sub(now).Hours() / 24)
					warn.failAt(kf[0], newProblem(ErrCertExpiring, "certificate %q in %s expires on %s, in %d days", c.Subject.String(), kf[1], certDate(c.NotAfter), days))
				}
			}
		}
	}
	if len(d.errs) > 0 {
		err = d.errs.sorted()
	}
	return warn.errs.sorted(), err
}

// certDate is how messages print a certificate's dates.
func certDate(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// fileCerts returns the certificates of a PEM file that parse.
func fileCerts(file string) []*x509.Certificate {
	data, err := files.Read(file, files.MaxPEM)
	if err != nil {
		return nil
	}
	var out []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}
