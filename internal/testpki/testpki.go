// Package testpki makes certificate authorities and certificates for tests
// and benchmarks with crypto/x509: P-256 keys, PEM files in a directory.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

var serial atomic.Int64

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	File string // PEM of Cert
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CN      string
	Server  bool // serverAuth for localhost, 127.0.0.1 and ::1; else clientAuth
	Expired bool // valid until yesterday
	// NotBefore and NotAfter, when set, replace the validity period
	// (an hour ago to a day from now, or Expired's).
	NotBefore, NotAfter time.Time
	// ExtraCNs, when set, are common names put in the subject before CN,
	// as separate attributes: crypto/x509 then reports CN alone as the
	// CommonName (the last one wins), which is what a forger relies on.
	ExtraCNs []string
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// NewCA makes a CA valid for a day and writes its certificate to
// dir/<name>-ca.pem.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	key, der, cert := sign(t, tmpl, nil, nil)
	ca := &CA{Cert: cert, Key: key, File: filepath.Join(dir, name+"-ca.pem")}
	WritePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// Issue signs a leaf certificate and writes it and its key to
// dir/<file>.crt and dir/<file>.key.
func (ca *CA) Issue(t testing.TB, dir, file string, o Leaf) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.CN, Organization: []string{"cosnim test"}},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	}
	if o.Expired {
		tmpl.NotBefore = time.Now().Add(-48 * time.Hour)
		tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	}
	if !o.NotBefore.IsZero() {
		tmpl.NotBefore = o.NotBefore
	}
	if !o.NotAfter.IsZero() {
		tmpl.NotAfter = o.NotAfter
	}
	if len(o.ExtraCNs) > 0 {
		for _, cn := range append(append([]string(nil), o.ExtraCNs...), o.CN) {
			tmpl.Subject.ExtraNames = append(tmpl.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: oidCommonName, Value: cn})
		}
	}
	key, der, cert := sign(t, tmpl, ca.Cert, ca.Key)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, file+".crt"), filepath.Join(dir, file+".key")
	WritePEM(t, certFile, "CERTIFICATE", der)
	WritePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile, cert
}

// SelfSigned makes a self-signed certificate with subject as it is,
// for code that reads only a certificate's subject and DER.
func SelfSigned(t testing.TB, subject pkix.Name) *x509.Certificate {
	t.Helper()
	_, _, cert := sign(t, &x509.Certificate{Subject: subject, NotAfter: time.Now().Add(time.Hour)}, nil, nil)
	return cert
}

// sign makes a key and a certificate from tmpl, signed by parent's key
// (self-signed when parent is nil), with the next serial number.
func sign(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, der, cert
}

// WritePEM writes der as PEM to name through a temporary file and a
// rename, as a deploy tool would, so a reader never sees half a file.
func WritePEM(t testing.TB, name, typ string, der []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// PKI is the set most TLS tests need: a CA, another CA that the relay does
// not trust, and a server certificate for localhost signed by the first.
type PKI struct {
	Dir                   string
	CA, OtherCA           *CA
	ServerCert, ServerKey string // files
	Server                *x509.Certificate
}

// NewPKI makes a PKI in a new temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir()}
	p.CA = NewCA(t, p.Dir, "ca")
	p.OtherCA = NewCA(t, p.Dir, "other")
	p.ServerCert, p.ServerKey, p.Server = p.CA.Issue(t, p.Dir, "server", Leaf{CN: "relay", Server: true})
	return p
}
