package roster

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/cosnim/relays/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/kat from the code")

// katPath holds known-answer vectors for PROTOCOL.md §7 and §8, so that
// another implementation can check itself. Every byte string is hex.
const katPath = "../testdata/kat/keys-v1.json"

type katFile struct {
	Comment  []string     `json:"comment"`
	Stretch  katStretch   `json:"stretch"`
	Channels []katChannel `json:"channels"`
}

type katStretch struct {
	Algorithm string          `json:"algorithm"`
	Time      uint32          `json:"time"`
	MemoryKiB uint32          `json:"memory_kib"`
	Threads   uint8           `json:"threads"`
	Size      uint32          `json:"size"`
	Salt      string          `json:"salt"`
	Vectors   []katStretchVec `json:"vectors"`
}

type katStretchVec struct {
	SecretText string `json:"secret_text,omitempty"`
	Secret     string `json:"secret"`
	Stretched  string `json:"stretched"`
}

type katChannel struct {
	Note string `json:"note"`
	// StretchedFrom, when set, is the text whose stretch Secret is.
	StretchedFrom string     `json:"stretched_from,omitempty"`
	SecretText    string     `json:"secret_text,omitempty"`
	Secret        string     `json:"secret"`
	Hub           string     `json:"hub"`
	JoinSeed      string     `json:"join_seed"`
	SealKey       string     `json:"seal_key"`
	NonceKey      string     `json:"nonce_key"`
	PublicKey     string     `json:"public_key"`
	ChannelID     string     `json:"channel_id"`
	Joins         []katJoin  `json:"joins"`
	Entries       []katEntry `json:"entries"`
}

type katJoin struct {
	Nonce     string `json:"nonce"`
	Signature string `json:"signature"`
}

type katEntry struct {
	Ref     string `json:"ref"`
	Nonce   string `json:"nonce"`
	Sealed  string `json:"sealed"`
	EntryID string `json:"entry_id"`
}

// katInputs are the inputs -update computes vectors for.
func katInputs(t *testing.T) katFile {
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	ff := bytes.Repeat([]byte{0xff}, JoinNonceSize)
	readme := "my continuum secret"
	stretched, err := secret.Stretch([]byte(readme))
	if err != nil {
		t.Fatal(err)
	}
	type in struct {
		note, from string
		secret     []byte
		hub        string
		nonces     [][]byte
		refs       [][]byte
	}
	ins := []in{
		{note: "a raw secret, as the simulator and tests use it (no stretching)", secret: []byte("continuum secret"), hub: "hub-a",
			nonces: [][]byte{seq(JoinNonceSize), ff},
			refs:   [][]byte{{}, []byte("capsule/0001"), []byte("capsule/0002"), seq(100)}},
		{note: "the README's example passphrase after secret.Stretch: what a real instance derives", from: readme, secret: stretched, hub: "hub-1",
			nonces: [][]byte{seq(JoinNonceSize)},
			refs:   [][]byte{[]byte("capsule/0001")}},
		{note: "a binary secret and a hub name outside ASCII (info is its UTF-8 bytes)", secret: seq(32), hub: "bucket/é",
			nonces: [][]byte{ff},
			refs:   [][]byte{[]byte("s3://bucket/é/capsule")}},
	}
	f := katFile{
		Comment: []string{
			"Known answers for PROTOCOL.md §7 (stretching, key derivation, channel ID, join proof) and §8 (sealing).",
			"Byte strings are hex; *_text fields repeat a secret as text when it is printable.",
			"Regenerate with: go test ./roster -run TestKnownAnswers -update",
		},
		Stretch: katStretch{Algorithm: "argon2id, version 0x13", Time: secret.Time, MemoryKiB: secret.MemoryKiB,
			Threads: secret.Threads, Size: secret.Size, Salt: secret.Salt},
	}
	for _, s := range [][]byte{[]byte(readme), seq(32), []byte("s")} {
		f.Stretch.Vectors = append(f.Stretch.Vectors, katStretchVec{SecretText: printable(s), Secret: hex.EncodeToString(s)})
	}
	for _, c := range ins {
		kc := katChannel{Note: c.note, StretchedFrom: c.from, SecretText: printable(c.secret), Secret: hex.EncodeToString(c.secret), Hub: c.hub}
		for _, n := range c.nonces {
			kc.Joins = append(kc.Joins, katJoin{Nonce: hex.EncodeToString(n)})
		}
		for _, r := range c.refs {
			kc.Entries = append(kc.Entries, katEntry{Ref: hex.EncodeToString(r)})
		}
		f.Channels = append(f.Channels, kc)
	}
	return f
}

func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return string(b)
}

// fill computes every output of f from its inputs with the code under test.
func (f *katFile) fill(t *testing.T) {
	for i := range f.Stretch.Vectors {
		v := &f.Stretch.Vectors[i]
		out, err := secret.Stretch(unhex(t, v.Secret))
		if err != nil {
			t.Fatal(err)
		}
		v.Stretched = hex.EncodeToString(out)
	}
	for i := range f.Channels {
		c := &f.Channels[i]
		k, err := DeriveKeys(unhex(t, c.Secret), c.Hub)
		if err != nil {
			t.Fatal(err)
		}
		c.JoinSeed = hex.EncodeToString(k.priv.Seed())
		c.SealKey = hex.EncodeToString(specKey(t, unhex(t, c.Secret), "seal", c.Hub))
		c.NonceKey = hex.EncodeToString(k.nonceKey)
		c.PublicKey = hex.EncodeToString(k.pub[:])
		c.ChannelID = hex.EncodeToString(k.id[:])
		for j := range c.Joins {
			var nonce [JoinNonceSize]byte
			copy(nonce[:], unhex(t, c.Joins[j].Nonce))
			_, sig := k.JoinProof(nonce)
			c.Joins[j].Signature = hex.EncodeToString(sig[:])
		}
		for j := range c.Entries {
			e, err := k.Seal(unhex(t, c.Entries[j].Ref))
			if err != nil {
				t.Fatal(err)
			}
			c.Entries[j].Nonce = hex.EncodeToString(e.Sealed[:12])
			c.Entries[j].Sealed = hex.EncodeToString(e.Sealed)
			c.Entries[j].EntryID = hex.EncodeToString(e.ID[:])
		}
	}
}

func specKey(t *testing.T, secret []byte, label, hub string) []byte {
	b, err := hkdf.Key(sha256.New, secret, []byte("cosnim relay v1"), label+"\x00"+hub, 32)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b
}

// TestKnownAnswers checks the code against testdata/kat: every output the
// code computes from the file's inputs must equal the file's.
func TestKnownAnswers(t *testing.T) {
	if *update {
		f := katInputs(t)
		f.fill(t)
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(katPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(katPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(katPath)
	if err != nil {
		t.Fatalf("%v (run go test ./roster -run TestKnownAnswers -update)", err)
	}
	var want katFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("%s: %v", katPath, err)
	}
	checkKATCounts(t, katInputs(t), want)
	s := want.Stretch
	if s.Time != secret.Time || s.MemoryKiB != secret.MemoryKiB || s.Threads != secret.Threads || s.Size != secret.Size || s.Salt != secret.Salt {
		t.Errorf("%s states stretch parameters %+v; the code uses time %d, memory %d KiB, threads %d, size %d, salt %q",
			katPath, s, secret.Time, secret.MemoryKiB, secret.Threads, secret.Size, secret.Salt)
	}
	got := want
	got.Stretch.Vectors = append([]katStretchVec(nil), want.Stretch.Vectors...)
	got.Channels = append([]katChannel(nil), want.Channels...)
	for i := range got.Channels {
		c := &got.Channels[i]
		c.Joins = append([]katJoin(nil), c.Joins...)
		c.Entries = append([]katEntry(nil), c.Entries...)
	}
	got.fill(t)
	for i, v := range want.Stretch.Vectors {
		if v.SecretText != "" && hex.EncodeToString([]byte(v.SecretText)) != v.Secret {
			t.Errorf("stretch vector %d: secret_text %q is not secret %s", i, v.SecretText, v.Secret)
		}
		if g := got.Stretch.Vectors[i].Stretched; g != v.Stretched {
			t.Errorf("secret.Stretch(%s) = %s, want %s", v.Secret, g, v.Stretched)
		}
	}
	for i, w := range want.Channels {
		g := got.Channels[i]
		name := w.Hub
		if w.SecretText != "" && hex.EncodeToString([]byte(w.SecretText)) != w.Secret {
			t.Errorf("%s: secret_text %q is not secret %s", name, w.SecretText, w.Secret)
		}
		if w.StretchedFrom != "" {
			out, _ := secret.Stretch([]byte(w.StretchedFrom))
			if hex.EncodeToString(out) != w.Secret {
				t.Errorf("%s: secret is not the stretch of %q", name, w.StretchedFrom)
			}
		}
		for _, f := range []struct{ what, got, want string }{
			{"join seed", g.JoinSeed, w.JoinSeed},
			{"seal key", g.SealKey, w.SealKey},
			{"nonce key", g.NonceKey, w.NonceKey},
			{"public key", g.PublicKey, w.PublicKey},
			{"channel ID", g.ChannelID, w.ChannelID},
		} {
			if f.got != f.want {
				t.Errorf("%s: %s = %s, want %s", name, f.what, f.got, f.want)
			}
		}
		for j, wj := range w.Joins {
			if g.Joins[j].Signature != wj.Signature {
				t.Errorf("%s: proof for nonce %s = %s, want %s", name, wj.Nonce, g.Joins[j].Signature, wj.Signature)
			}
		}
		for j, we := range w.Entries {
			ge := g.Entries[j]
			if ge.Nonce != we.Nonce || ge.Sealed != we.Sealed || ge.EntryID != we.EntryID {
				t.Errorf("%s: Seal(%s) = nonce %s, sealed %s, ID %s; want %s, %s, %s",
					name, we.Ref, ge.Nonce, ge.Sealed, ge.EntryID, we.Nonce, we.Sealed, we.EntryID)
			}
			checkKATEntry(t, w, we)
			if k, err := DeriveKeys(unhex(t, w.Secret), w.Hub); err == nil {
				if ref, err := k.Open(NewEntry(unhex(t, we.Sealed))); err != nil || hex.EncodeToString(ref) != we.Ref {
					t.Errorf("%s: Open(%s) = %x, %v; want %s", name, we.Sealed, ref, err, we.Ref)
				}
			}
		}
	}
}

// checkKATCounts fails unless the file holds as many vectors of each kind
// as -update writes, so that a truncated or empty file cannot pass.
func checkKATCounts(t *testing.T, in, f katFile) {
	t.Helper()
	count := func(f katFile) (n [4]int) {
		n[0], n[1] = len(f.Stretch.Vectors), len(f.Channels)
		for _, c := range f.Channels {
			n[2] += len(c.Joins)
			n[3] += len(c.Entries)
		}
		return n
	}
	got, want := count(f), count(in)
	for i, kind := range []string{"stretch vectors", "channels", "join proofs", "entries"} {
		if got[i] != want[i] || got[i] == 0 {
			t.Errorf("%s holds %d %s, want %d", katPath, got[i], kind, want[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkKATEntry opens a vector's sealed bytes with the file's seal key and
// channel ID alone, so the file is self-consistent for a reader without
// this code.
func checkKATEntry(t *testing.T, c katChannel, e katEntry) {
	t.Helper()
	block, err := aes.NewCipher(unhex(t, c.SealKey))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	sealed := unhex(t, e.Sealed)
	ref, err := aead.Open(nil, sealed[:12], sealed[12:], unhex(t, c.ChannelID))
	if err != nil || !bytes.Equal(ref, unhex(t, e.Ref)) {
		t.Errorf("%s: vector %s does not open to its ref with the file's seal key and channel ID: %v", c.Hub, e.Sealed, err)
	}
	if id := sha256.Sum256(sealed); hex.EncodeToString(id[:]) != e.EntryID {
		t.Errorf("%s: entry ID %s is not SHA-256 of the sealed bytes", c.Hub, e.EntryID)
	}
}
