package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/cosnim/relays/client"
	"github.com/cosnim/relays/transport/tcp"
	"github.com/cosnim/relays/wire"
)

// ErrPermanent marks a failure to use a relay that no retry cures: the
// port speaks TLS or plaintext where the client does not, it is no relay
// at all, a certificate is refused or not trusted, or the relay refused
// this client outright. The Agent keeps retrying (the operator may fix
// it), but its Wait methods return at once with an error wrapping this.
var ErrPermanent = errors.New("agent: the relay cannot be used as configured")

// RefusedError is a relay's Error frame that no retry cures: no common
// protocol version, or a client certificate it does not authorize.
type RefusedError struct {
	Code wire.Code
	Text string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the relay refused this client: %s: %s", e.Code, e.Text)
}

// RefusalCode reports the Error codes that make a RefusedError: a relay
// that sends one will send it again.
func RefusalCode(code wire.Code) bool {
	return code == wire.CodeVersion || code == wire.CodeUnauthorized
}

// IsPermanent reports whether err, why a connection to a relay failed,
// will recur on every retry (see ErrPermanent). A refused or timed-out
// dial is not: the relay may be restarting.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var (
		re *RefusedError
		oe *net.OpError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
		cv *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, ErrPermanent), errors.Is(err, tcp.ErrProtocolMismatch), errors.Is(err, wire.ErrNotRelay),
		errors.As(err, &re), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci), errors.As(err, &cv):
		return true
	case errors.As(err, &oe) && oe.Op == "remote error":
		// A TLS alert from the relay: it refused the handshake or this
		// client's certificate.
		return true
	}
	return false
}

// permanentLocked returns why the relay cannot be used, wrapping
// ErrPermanent, while the Agent is not connected and its last attempt
// failed for good; nil otherwise. a.mu must be held.
func (a *Agent) permanentLocked() error {
	if a.state == client.Connected {
		return nil
	}
	switch {
	case a.refusal != nil:
		return &permanentError{a.refusal}
	case IsPermanent(a.lastErr):
		return &permanentError{a.lastErr}
	}
	return nil
}

// permanentError is a reason a relay cannot be used, marked with
// ErrPermanent; its text is the reason's.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{ErrPermanent, e.err} }

// Permanent reports why the relay cannot be used as configured (an error
// wrapping ErrPermanent), or nil while it can or may yet: while connected,
// or when the last attempt failed for a reason a retry may cure.
func (a *Agent) Permanent() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.permanentLocked()
}
