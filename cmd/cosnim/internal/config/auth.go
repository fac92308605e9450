package config

import (
	"crypto/x509"

	"github.com/cosnim/relays/transport/tcp"
)

// Authorizes reports whether a verified client certificate is admitted by
// AuthorizedClients, by the rule the relay applies (tcp.Allowed). An
// empty list admits every certificate that verified against ClientCAFile.
func (s *Server) Authorizes(cert *x509.Certificate) bool {
	return len(s.AuthorizedClients) == 0 || tcp.Allowed(cert, s.AuthorizedClients)
}
