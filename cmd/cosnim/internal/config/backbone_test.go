package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nkeys"

	natsbus "github.com/cosnim/relays/backbone/nats"
	"github.com/cosnim/relays/internal/testpki"
	"github.com/cosnim/relays/internal/testutil"
)

// backboneFile is a relay whose server.backbone section is section
// (indented under it), written to dir/cosnim.yaml. Its first key is at
// line 8.
func backboneFile(t *testing.T, dir, section string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("relays:\n  r:\n    client:\n      url: tcp://h\n    server:\n      url: tcp://h\n      backbone:\n")
	for line := range strings.Lines(section) {
		b.WriteString("        " + line)
	}
	name := filepath.Join(dir, "cosnim.yaml")
	testutil.WriteFile(t, name, b.String())
	return name
}

// userSeed writes an nkey user seed, and a creds file holding it.
func userSeed(t *testing.T, dir string) (seedFile, credsFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile, credsFile = filepath.Join(dir, "relay.nk"), filepath.Join(dir, "relay.creds")
	testutil.WriteFile(t, seedFile, string(seed)+"\n")
	testutil.WriteFile(t, credsFile, fmt.Sprintf("-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------\n\n"+
		"-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", seed))
	return seedFile, credsFile
}

func TestBackboneLoaded(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "nats")
	cert, key, _ := ca.Issue(t, dir, "relay", testpki.Leaf{CN: "relay"})
	_, creds := userSeed(t, dir)
	poolKey := filepath.Join(dir, "pool.key")
	testutil.WriteFile(t, poolKey, "tG3nQ8vZ1xW5rK0pL7yH2cB9mD4fJ6sA+uE=\n")
	name := backboneFile(t, dir, fmt.Sprintf(
		"urls: [tls://nats-1:4222, tls://nats-2]\nca_cert_file: %s\ncert_file: relay.crt\nkey_file: %s\ncreds_file: relay.creds\nsubject_prefix: cosnim.east\nrequest_timeout: 500ms\npool_key_file: pool.key\n",
		ca.File, key))
	f, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Relays["r"].Server.Backbone
	want := Backbone{URLs: []string{"tls://nats-1:4222", "tls://nats-2"}, Servers: []string{"tls://nats-1:4222", "tls://nats-2"},
		CACertFile: ca.File, CertFile: cert, KeyFile: key, CredsFile: creds, SubjectPrefix: "cosnim.east", RequestTimeout: 500 * time.Millisecond,
		PoolKeyFile: poolKey}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backbone (-want +got):\n%s", diff)
	}
	if !got.Enabled() {
		t.Error("Enabled() = false")
	}
	if err := Check(f); err != nil {
		t.Errorf("Check: %v", err)
	}
	o := got.Options()
	if !cmp.Equal(o.URLs, want.Servers) || o.CredsFile != creds || o.RequestTimeout != 500*time.Millisecond || o.PoolKeyFile != poolKey {
		t.Errorf("Options() = %+v", o)
	}

	// Without the section there is no backbone, and the default timeout.
	f, err = Parse([]byte("relays:\n  r:\n    client:\n      url: tcp://h\n    server:\n      url: tcp://h\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if b := f.Relays["r"].Server.Backbone; b.Enabled() || b.RequestTimeout != natsbus.DefaultRequestTimeout {
		t.Errorf("absent backbone = %+v, want disabled with request_timeout %v", b, natsbus.DefaultRequestTimeout)
	}
}

func TestBackboneErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	testutil.WriteFile(t, notPEM, "not a certificate\n")
	shortKey := filepath.Join(dir, "short.key")
	testutil.WriteFile(t, shortKey, "password123\n")
	tests := []struct {
		name     string
		section  string
		sentinel error
		line     int
		key      string // under relays.r.server.backbone
		contains string
	}{
		{"unknown key", "url: nats://h\nsubject_prefx: x\n", ErrUnknownKey, 9, "subject_prefx", "did you mean `subject_prefix`?"},
		{"bad scheme", "url: http://h:4222\n", ErrInvalid, 8, "url", "nats:// or tls://"},
		{"credentials in url", "url: nats://u:p@h\n", ErrInvalid, 8, "url", "not in the URL"},
		{"bad url in list", "urls: [nats://h, tcp://g]\n", ErrInvalid, 8, "urls.1", "nats:// or tls://"},
		{"url and urls", "url: nats://h\nurls: [nats://g]\n", ErrInvalid, 9, "urls", "use one"},
		{"settings without url", "user: relay\n", ErrRequired, 8, "user", "no url"},
		{"password without user", "url: nats://h\npassword: x\n", ErrRequired, 9, "password", "user is not"},
		{"creds and user", "url: nats://h\ncreds_file: " + notPEM + "\nuser: u\n", ErrInvalid, 10, "user", "creds_file and user"},
		{"cert without key", "url: tls://h\ncert_file: " + notPEM + "\n", ErrRequired, 9, "cert_file", "key_file is not"},
		{"missing file", "url: tls://h\nca_cert_file: nowhere.pem\n", ErrFileNotFound, 9, "ca_cert_file", "nowhere.pem"},
		{"wildcard prefix", "url: nats://h\nsubject_prefix: cosnim.*\n", ErrInvalid, 9, "subject_prefix", "holds '*'"},
		{"zero timeout", "url: nats://h\nrequest_timeout: 0s\n", ErrInvalid, 9, "request_timeout", "greater than 0"},
		{"short pool key", "url: nats://h\npool_key_file: " + shortKey + "\n", ErrInvalid, 9, "pool_key_file", "at least 32"},
		{"pool key without url", "pool_key_file: " + shortKey + "\n", ErrRequired, 8, "pool_key_file", "no url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(backboneFile(t, dir, tt.section))
			path := "relays.r.server.backbone." + tt.key
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Load = %v, want Errors", err)
			}
			for _, e := range es {
				if errors.Is(e, tt.sentinel) && e.Path == path && strings.Contains(e.Error(), tt.contains) {
					if e.Line != tt.line {
						t.Errorf("line %d, want %d: %v", e.Line, tt.line, e)
					}
					if !strings.HasPrefix(e.Error(), fmt.Sprintf("%s:%d: %s: ", filepath.Join(dir, "cosnim.yaml"), tt.line, path)) {
						t.Errorf("message %q does not start with file:line: key", e.Error())
					}
					return
				}
			}
			t.Errorf("want %v at %s with %q, got:\n%v", tt.sentinel, path, tt.contains, err)
		})
	}
}

func TestBackboneCheckParsesFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	testutil.WriteFile(t, bad, "not a certificate\n")
	seed, _ := userSeed(t, dir)
	for _, tt := range []struct {
		section, key string
	}{
		{"url: tls://h\nca_cert_file: " + bad + "\n", "ca_cert_file"},
		{"url: tls://h\ncert_file: " + bad + "\nkey_file: " + bad + "\n", "cert_file"},
		{"url: nats://h\ncreds_file: " + bad + "\n", "creds_file"},
		{"url: nats://h\nnkey_seed_file: " + bad + "\n", "nkey_seed_file"},
	} {
		f, err := Load(backboneFile(t, dir, tt.section))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		err = Check(f)
		var e *Error
		if !errors.Is(err, ErrBadPEM) || !errors.As(err, &e) || e.Path != "relays.r.server.backbone."+tt.key {
			t.Errorf("%s: Check = %v, want ErrBadPEM at %s", tt.key, err, tt.key)
		}
	}
	f, err := Load(backboneFile(t, dir, "url: nats://h\nnkey_seed_file: "+seed+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(f); err != nil {
		t.Errorf("Check with a good seed: %v", err)
	}
}

func TestBackboneCertDates(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "nats")
	cert, key, _ := ca.Issue(t, dir, "relay", testpki.Leaf{CN: "relay", Expired: true})
	f, err := Load(backboneFile(t, dir, fmt.Sprintf("url: tls://h\ncert_file: %s\nkey_file: %s\n", cert, key)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = CertDates(f, time.Now(), nil, ServerSection)
	var e *Error
	if !errors.Is(err, ErrCertExpired) || !errors.As(err, &e) || e.Path != "relays.r.server.backbone.cert_file" {
		t.Errorf("CertDates = %v, want the expired backbone certificate", err)
	}
}

// TestBackboneDocumented keeps the server.backbone table of
// docs/CONFIG.md in step with the section: every key, and the defaults
// Defaults sets.
func TestBackboneDocumented(t *testing.T) {
	documented := map[string]string{}
	for _, r := range docRows(t)["server.backbone"] {
		for k := range strings.SplitSeq(r[0], "`, `") {
			documented[k] = r[1]
		}
	}
	names, _ := fieldsOf(reflect.TypeFor[Backbone]())
	for _, k := range names {
		if _, ok := documented[k]; !ok {
			t.Errorf("server.backbone.%s is not documented in docs/CONFIG.md", k)
		}
	}
	if got, want := documented["request_timeout"], defaultBackbone().RequestTimeout.String(); got != want {
		t.Errorf("request_timeout: docs say %q, Defaults %q", got, want)
	}
	if len(names) < 10 {
		t.Errorf("server.backbone has %d keys, want at least 10", len(names))
	}
}
