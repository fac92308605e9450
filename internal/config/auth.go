package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// Authorizes reports whether a verified client certificate is admitted by
// AuthorizedClients. An empty list admits every certificate that verified
// against ClientCAFile. An entry admits cert when it is its SHA-256
// fingerprint, its full subject (as crypto/x509 prints it, e.g.
// "CN=instance-1,O=Example"), or "CN=name" for its common name.
func (s *Server) Authorizes(cert *x509.Certificate) bool {
	if len(s.AuthorizedClients) == 0 {
		return true
	}
	sum := sha256.Sum256(cert.Raw)
	fp := "sha256:" + hex.EncodeToString(sum[:])
	subject := cert.Subject.String()
	for _, a := range s.AuthorizedClients {
		switch {
		case a == fp, a == subject:
			return true
		case strings.HasPrefix(a, "CN=") && !strings.Contains(a, ",") && a[len("CN="):] == cert.Subject.CommonName:
			return true
		}
	}
	return false
}
