package config

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	"github.com/cosnim/relays/internal/files"
	"github.com/cosnim/relays/transport/tcp"
)

// ErrBadPEM: a certificate or key file that cannot be used.
var ErrBadPEM = errors.New("config: unusable certificate or key")

// Check goes beyond Load for `cosnim config check`: it parses every
// certificate and key the file names and checks that each certificate
// matches its key, and refuses certificates that have expired or are not
// yet valid (CertDates; its warnings are the caller's to fetch). It
// returns nil or Errors.
func Check(f *File) error {
	d := &decoder{name: f.Name(), lines: f.lines}
	for _, name := range f.RelayNames() {
		r := f.Relays[name]
		p := "relays." + name
		c, s := &r.Client, &r.Server
		d.checkCAs(c.CACertFile, p+".client.ca_cert_file")
		d.checkPair(c.CertFile, c.KeyFile, p+".client.cert_file")
		d.checkPair(s.SSLCertFile, s.PrivateKeyFile, p+".server.ssl_cert_file")
		d.checkCAs(s.ClientCAFile, p+".server.client_ca_file")
		d.checkBackbone(&s.Backbone, p+".server.backbone")
	}
	var dates Errors
	if _, err := CertDates(f, time.Now(), nil, ClientSection|ServerSection); errors.As(err, &dates) {
		d.errs = append(d.errs, dates...)
	}
	if len(d.errs) > 0 {
		return d.errs.sorted()
	}
	return nil
}

func (d *decoder) checkPair(cert, key, path string) {
	if cert == "" || key == "" {
		return
	}
	if _, err := tcp.LoadKeyPair(cert, key); err != nil {
		d.failAt(path, newProblem(ErrBadPEM, "%s with %s: %v", cert, key, err))
	}
}

func (d *decoder) checkCAs(file, path string) {
	if file == "" {
		return
	}
	data, err := files.Read(file, files.MaxPEM)
	if err != nil {
		d.failAt(path, newProblem(ErrFileNotFound, "cannot read file: %v", err))
		return
	}
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			d.failAt(path, newProblem(ErrBadPEM, "%s: %v", file, err))
			return
		}
		n++
	}
	if n == 0 {
		d.failAt(path, newProblem(ErrBadPEM, "%s holds no PEM certificate", file))
	}
}
