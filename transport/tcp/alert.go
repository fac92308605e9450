package tcp

import (
	"crypto/tls"
	"errors"
	"net"
	"reflect"
)

// ReceivedAlert reports the TLS alert the peer sent, if err is one.
// crypto/tls reports a received alert as a *net.OpError with Op "remote
// error" wrapping an unexported uint8 type; its value is the alert code,
// which tls.AlertError names.
func ReceivedAlert(err error) (tls.AlertError, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	if v := reflect.ValueOf(oe.Err); v.Kind() == reflect.Uint8 {
		return tls.AlertError(v.Uint()), true
	}
	return 0, false
}

// TLS alert codes (RFC 8446 §6) that say the peer refused a certificate.
const (
	AlertBadCertificate         tls.AlertError = 42
	AlertUnsupportedCertificate tls.AlertError = 43
	AlertCertificateRevoked     tls.AlertError = 44
	AlertCertificateExpired     tls.AlertError = 45
	AlertCertificateUnknown     tls.AlertError = 46
	AlertUnknownCA              tls.AlertError = 48
)
