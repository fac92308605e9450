package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

const (
	tlsDoc     = "../../docs/TLS.md"
	certScript = "../../testdata/openssl/make-certs.sh"
	scriptMark = "# --- commands from docs/TLS.md ---"
)

// scriptCommands returns the command lines of make-certs.sh below the marker.
func scriptCommands(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(certScript)
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(data), scriptMark)
	if !ok {
		t.Fatalf("%s lacks the marker %q", certScript, scriptMark)
	}
	var cmds []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// docYAML returns the first ```yaml block of docs/TLS.md.
func docYAML(t *testing.T, doc string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "```yaml\n")
	if !ok {
		t.Fatal("docs/TLS.md has no ```yaml block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/TLS.md: unterminated ```yaml block")
	}
	return block
}

func TestTLSDocMatchesScript(t *testing.T) {
	doc, err := os.ReadFile(tlsDoc)
	if err != nil {
		t.Fatal(err)
	}
	cmds := scriptCommands(t)
	if len(cmds) < 9 {
		t.Fatalf("only %d commands in %s", len(cmds), certScript)
	}
	docLines := map[string]bool{}
	for line := range strings.Lines(string(doc)) {
		docLines[strings.TrimSpace(line)] = true
	}
	for _, c := range cmds {
		if !docLines[c] {
			t.Errorf("script command not in docs/TLS.md: %s", c)
		}
	}
	for _, ext := range []string{"server.ext", "client.ext"} {
		data, err := os.ReadFile(filepath.Join("../../testdata/openssl", ext))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), "```\n"+string(data)+"```") {
			t.Errorf("docs/TLS.md does not show testdata/openssl/%s verbatim", ext)
		}
	}
}

func TestTLSSetup(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	out := t.TempDir()
	cmd := exec.Command("sh", certScript, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, b)
	}
	doc, err := os.ReadFile(tlsDoc)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(out, "cosnim.yaml")
	if err := os.WriteFile(cfgPath, []byte(docYAML(t, string(doc))), 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "config", "check", "--config", cfgPath)
	if code != 0 || stdout != "ok: 1 relays (main)\n" {
		t.Fatalf("config check: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	f, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Relay("main")
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Server.TLS || !rc.Client.TLS {
		t.Fatalf("documented config is not tcps: %+v", rc)
	}
	serverPair, err := tls.LoadX509KeyPair(rc.Server.SSLCertFile, rc.Server.PrivateKeyFile)
	if err != nil {
		t.Fatalf("server pair: %v", err)
	}
	clientPair, err := tls.LoadX509KeyPair(rc.Client.CertFile, rc.Client.KeyFile)
	if err != nil {
		t.Fatalf("client pair: %v", err)
	}
	caPEM, err := os.ReadFile(rc.Client.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	if len(serverPair.Certificate) != 2 {
		t.Errorf("server bundle has %d certificates, want 2 (server, CA)", len(serverPair.Certificate))
	}
	leaf, err := x509.ParseCertificate(serverPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("server cert for %s: %v", name, err)
		}
	}
	client, err := x509.ParseCertificate(clientPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if !rc.Server.Authorizes(client) {
		t.Errorf("authorized_clients %v does not admit %s", rc.Server.AuthorizedClients, client.Subject)
	}
	other := *rc
	other.Server.AuthorizedClients = []string{"CN=someone-else"}
	if other.Server.Authorizes(client) {
		t.Errorf("CN=someone-else admits %s", client.Subject)
	}
}
