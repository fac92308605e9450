package config

import (
	"crypto/x509"

	"github.com/cosnim/relays/transport"
)

// Authorizes reports whether a verified client certificate is admitted by
// AuthorizedClients, by the rule the relay applies (transport.Allowed). An
// empty list admits every certificate that verified against ClientCAFile.
func (s *Server) Authorizes(cert *x509.Certificate) bool {
	return len(s.AuthorizedClients) == 0 || transport.Allowed(cert, s.AuthorizedClients)
}
