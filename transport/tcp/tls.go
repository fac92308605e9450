package tcp

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cosnim/relays/internal/files"
)

// Sentinel errors of client certificate checks.
var (
	// ErrNotAllowed reports a client certificate that verified but is not
	// in the allowed list.
	ErrNotAllowed = errors.New("transport: client certificate not allowed")
	// ErrSeveralCommonNames reports a client certificate whose subject has
	// more than one common name: crypto/x509 keeps only the last, so
	// "CN=attacker,CN=instance-1" would pass for instance-1.
	ErrSeveralCommonNames = errors.New("transport: client certificate has several common names")
)

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// commonNames lists the common name attributes of a certificate's
// subject, in order.
func commonNames(cert *x509.Certificate) []string {
	var cns []string
	for _, a := range cert.Subject.Names {
		if a.Type.Equal(oidCommonName) {
			cns = append(cns, fmt.Sprint(a.Value))
		}
	}
	return cns
}

// reloadInterval is how often, at most, a handshake checks the files.
const reloadInterval = time.Second

// CertReloader serves a certificate and key pair from files and reloads
// them when either file's modification time or size changes. It checks at
// most once per second, during a handshake. If the new pair fails to load
// it keeps serving the old one and logs the failure.
type CertReloader struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex // guards the following
	log       *slog.Logger
	cert      *tls.Certificate
	certStamp fileStamp
	keyStamp  fileStamp
	checked   time.Time
	lastErr   error
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// NewCertReloader loads the pair once; it fails if that load fails.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{
		certFile: certFile,
		keyFile:  keyFile,
		interval: reloadInterval,
		now:      time.Now,
		log:      slog.New(slog.DiscardHandler),
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.checked = r.now()
	return r, nil
}

// SetLogger sets where reload failures and successes are logged (by
// default nowhere).
func (r *CertReloader) SetLogger(log *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = log
}

// Err reports the last reload failure, nil once a reload succeeds.
func (r *CertReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// load reads both files; the caller holds mu or owns r.
func (r *CertReloader) load() error {
	cs, err := stampOf(r.certFile)
	if err != nil {
		return fmt.Errorf("transport: certificate: %w", err)
	}
	ks, err := stampOf(r.keyFile)
	if err != nil {
		return fmt.Errorf("transport: key: %w", err)
	}
	cert, err := LoadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("transport: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certStamp, r.keyStamp = &cert, cs, ks
	return nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		r.maybeReloadLocked()
	}
	return r.cert, nil
}

func (r *CertReloader) maybeReloadLocked() {
	cs, err1 := stampOf(r.certFile)
	ks, err2 := stampOf(r.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		r.failLocked(err)
		return
	}
	if cs == r.certStamp && ks == r.keyStamp {
		return
	}
	old, oldCS, oldKS := r.cert, r.certStamp, r.keyStamp
	if err := r.load(); err != nil {
		r.cert = old
		r.failLocked(err)
		return
	}
	if leaf := r.cert.Leaf; leaf != nil {
		now := r.now()
		if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			// Keep the old pair, and look at the files again next time.
			r.cert, r.certStamp, r.keyStamp = old, oldCS, oldKS
			r.failLocked(fmt.Errorf("transport: new certificate %q is valid only from %s to %s; keeping the old one",
				leaf.Subject.String(), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)))
			return
		}
		if left := leaf.NotAfter.Sub(now); left < ExpiryWarning {
			r.log.Warn("transport: reloaded TLS certificate expires soon", "cert", r.certFile,
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "days", int(left.Hours()/24))
		}
	}
	r.lastErr = nil
	r.log.Info("transport: reloaded TLS certificate", "cert", r.certFile)
}

// ExpiryWarning is how long before a certificate's end the relay, `config
// check` and `start relay` warn about it.
const ExpiryWarning = 30 * 24 * time.Hour

func (r *CertReloader) failLocked(err error) {
	if r.lastErr == nil || r.lastErr.Error() != err.Error() {
		r.log.Error("transport: TLS certificate reload failed; keeping the old one", "cert", r.certFile, "err", err)
	}
	r.lastErr = err
}

// LoadKeyPair is tls.LoadX509KeyPair through files.Read: both files must
// be regular and at most files.MaxPEM bytes.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := files.Read(certFile, files.MaxPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := files.Read(keyFile, files.MaxPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := files.Read(file, files.MaxPEM)
	if err != nil {
		return nil, fmt.Errorf("transport: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("transport: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Fingerprint returns "sha256:<hex>" of a certificate's DER bytes, the
// form an allowed list accepts.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Allowed reports whether cert matches an entry of allowed. An entry is
// one of:
//   - "sha256:HEX", the SHA-256 of the certificate's DER (colons and case in
//     HEX ignored);
//   - "CN=NAME" (no comma), the common name alone;
//   - anything else, the full subject as Subject.String() prints it
//     ("CN=instance-1,O=Example"). A bare "NAME" is such a subject, so it
//     matches no certificate: a common name must be asked for with "CN=".
//
// An empty entry, or "CN=" with an empty name, matches nothing, not even a
// certificate without a subject or common name. A certificate with
// several common names matches nothing by subject (see
// ErrSeveralCommonNames).
func Allowed(cert *x509.Certificate, allowed []string) bool {
	subject, fp := cert.Subject.String(), Fingerprint(cert)
	if len(commonNames(cert)) > 1 {
		subject = "" // matches no entry: empty ones are skipped
	}
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if hexFP, ok := strings.CutPrefix(strings.ToLower(a), "sha256:"); ok {
			if "sha256:"+strings.ReplaceAll(hexFP, ":", "") == fp {
				return true
			}
			continue
		}
		if len(a) >= 3 && strings.EqualFold(a[:3], "CN=") && !strings.Contains(a, ",") {
			if cn := strings.TrimSpace(a[3:]); cn != "" && subject != "" && cn == cert.Subject.CommonName {
				return true
			}
		}
		if a == subject {
			return true
		}
	}
	return false
}

// ClassicalKeyExchanges is what a relay offers in TLS unless configured
// for post-quantum exchanges too (set tls.Config.CurvePreferences to nil
// for Go's default, hybrids included). A hybrid X25519MLKEM768 handshake
// costs the relay about twice the CPU of X25519 alone, which decides
// whether 10,000 clients can reconnect within seconds; what the relay
// carries is already sealed end to end.
var ClassicalKeyExchanges = []tls.CurveID{tls.X25519, tls.CurveP256}

// ServerTLSConfig returns a server configuration: TLS 1.2 or later, the
// certificate served by a CertReloader on certFile and keyFile, session
// tickets on, ClassicalKeyExchanges. With clientCAFile set, clients must
// present a certificate signed by one of its CAs and with one common name
// at most (ErrSeveralCommonNames); with allowed non-empty, that
// certificate must also match an entry (see Allowed), or the handshake
// fails with ErrNotAllowed.
func ServerTLSConfig(certFile, keyFile, clientCAFile string, allowed []string) (*tls.Config, *CertReloader, error) {
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		GetCertificate:   r.GetCertificate,
		CurvePreferences: ClassicalKeyExchanges,
	}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyClient(cs.PeerCertificates, allowed)
		}
	}
	if len(allowed) > 0 && clientCAFile == "" {
		return nil, nil, errors.New("transport: an allowed list of client certificates needs a client CA file")
	}
	return cfg, r, nil
}

// verifyClient checks a client certificate that crypto/tls verified
// against the client CAs (on resumed sessions too): its common names and
// the allowed list.
func verifyClient(chain []*x509.Certificate, allowed []string) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate", ErrNotAllowed)
	}
	leaf := chain[0]
	if cns := commonNames(leaf); len(cns) > 1 {
		return fmt.Errorf("%w: %q (%s)", ErrSeveralCommonNames, cns, Fingerprint(leaf))
	}
	if len(allowed) > 0 && !Allowed(leaf, allowed) {
		return fmt.Errorf("%w: subject %q (%s) is not in the allowed list", ErrNotAllowed, leaf.Subject.String(), Fingerprint(leaf))
	}
	return nil
}

// ClientTLSConfig returns a client configuration: TLS 1.2 or later,
// servers verified against caFile (the system roots when empty), a client
// certificate when certFile is set, and an LRU session cache for
// resumption. serverName overrides the name checked in the server's
// certificate (by default the dialed host).
func ClientTLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := LoadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("transport: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		// Send it even when the relay's list of acceptable CAs does not
		// name its issuer (crypto/tls would send none): the relay can then
		// say "unknown authority", not "no certificate".
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg, nil
}
