package nats

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cosnim/relays/internal/files"
)

// With a pool key every message on the bus is sealed in an envelope
// (PROTOCOL.md §14, "Pool key"):
//
//	version u8 (1) | sender [8] | counter u64 | time u64 (Unix ms) | payload | tag [32]
//
// tag is HMAC-SHA256, keyed by HKDF-SHA256 of the pool key, over a label,
// the subject, the reply subject, the header and the payload: a message
// cannot be forged, moved to another subject or given another reply
// address. sender is random per Bus and counter counts its messages, so
// a receiver refuses a message it has seen (a window of replayWindow
// counters per sender) and one whose time is more than AuthMaxAge away
// from its own clock (which bounds what a receiver must remember).

// AuthOverhead is what the envelope adds to a message.
const AuthOverhead = authHeader + sha256.Size

const (
	authVersion = 1
	authHeader  = 1 + 8 + 8 + 8
	authLabel   = "cosnim backbone message v1"
	authKDFInfo = "cosnim backbone pool key v1"
	// replayWindow is how far behind a sender's newest counter an
	// unseen one is still taken (NATS keeps one publisher's order, so
	// little is needed).
	replayWindow = 64
	// maxSenders bounds the senders remembered; only holders of the key
	// add any, and those silent for AuthMaxAge are forgotten first.
	maxSenders = 4096
)

// AuthMaxAge is how far a message's time may be from the receiver's
// clock; relays' clocks must agree within it.
const AuthMaxAge = time.Minute

// Pool key file rules.
const (
	// MinPoolKey is the shortest pool key, in bytes of the file without
	// surrounding white space (`openssl rand -base64 32` gives 44).
	MinPoolKey = 32
	// minPoolKeyDistinct refuses repetitive keys ("aaaa…", "0000…"); a
	// random hex key of MinPoolKey characters has about 15.
	minPoolKeyDistinct = 10
	maxPoolKeyFile     = 4 << 10
)

// Authentication failures, counted together as unauthenticated.
var (
	ErrUnauthenticated = errors.New("backbone: message fails the pool key")
	ErrStale           = errors.New("backbone: message time outside AuthMaxAge")
	ErrReplayed        = errors.New("backbone: message replayed")
	ErrWeakPoolKey     = errors.New("backbone: weak pool key")
)

// LoadPoolKey reads a pool key file and checks the key is strong enough.
func LoadPoolKey(name string) ([]byte, error) {
	data, err := files.Read(name, maxPoolKeyFile)
	if err != nil {
		return nil, fmt.Errorf("backbone: pool key: %w", err)
	}
	key := bytes.TrimSpace(data)
	if err := checkPoolKey(key); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWeakPoolKey, name, err)
	}
	return key, nil
}

func checkPoolKey(key []byte) error {
	if len(key) < MinPoolKey {
		return fmt.Errorf("%d bytes, want at least %d (make one with `openssl rand -base64 32`)", len(key), MinPoolKey)
	}
	var seen [256]bool
	n := 0
	for _, c := range key {
		if !seen[c] {
			seen[c] = true
			n++
		}
	}
	if n < minPoolKeyDistinct {
		return fmt.Errorf("only %d different characters: not a random key (make one with `openssl rand -base64 32`)", n)
	}
	return nil
}

// auth seals and opens envelopes. seal is called by the writer, open by
// the pump; each is one goroutine.
type auth struct {
	key    []byte
	sender [8]byte
	ctr    atomic.Uint64

	mu      sync.Mutex // guards peers
	peers   map[[8]byte]*window
	sealMAC hash.Hash // the writer's
	openMAC hash.Hash // the pump's
}

// window is one sender's replay state: its newest counter and which of
// the replayWindow before it were seen.
type window struct {
	top, seen uint64
	last      time.Time
}

func newAuth(poolKey []byte) *auth {
	k, err := hkdf.Key(sha256.New, poolKey, nil, authKDFInfo, sha256.Size)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	a := &auth{key: k, peers: map[[8]byte]*window{}}
	rand.Read(a.sender[:])
	a.sealMAC, a.openMAC = hmac.New(sha256.New, k), hmac.New(sha256.New, k)
	return a
}

func (a *auth) tag(mac hash.Hash, subject, reply string, header, payload []byte) []byte {
	mac.Reset()
	var n [2]byte
	mac.Write([]byte(authLabel))
	binary.BigEndian.PutUint16(n[:], uint16(len(subject)))
	mac.Write(n[:])
	mac.Write([]byte(subject))
	binary.BigEndian.PutUint16(n[:], uint16(len(reply)))
	mac.Write(n[:])
	mac.Write([]byte(reply))
	mac.Write(header)
	mac.Write(payload)
	return mac.Sum(nil)
}

// seal returns payload in an envelope for subject and reply.
func (a *auth) seal(subject, reply string, payload []byte, now time.Time) []byte {
	out := make([]byte, authHeader, authHeader+len(payload)+sha256.Size)
	out[0] = authVersion
	copy(out[1:9], a.sender[:])
	binary.BigEndian.PutUint64(out[9:17], a.ctr.Add(1))
	binary.BigEndian.PutUint64(out[17:25], uint64(now.UnixMilli()))
	out = append(out, payload...)
	return append(out, a.tag(a.sealMAC, subject, reply, out[:authHeader], payload)...)
}

// open checks an envelope received on subject with reply and returns its
// payload (aliasing msg).
func (a *auth) open(subject, reply string, msg []byte, now time.Time) ([]byte, error) {
	if len(msg) < AuthOverhead || msg[0] != authVersion {
		return nil, ErrUnauthenticated
	}
	header, payload, tag := msg[:authHeader], msg[authHeader:len(msg)-sha256.Size], msg[len(msg)-sha256.Size:]
	if !hmac.Equal(tag, a.tag(a.openMAC, subject, reply, header, payload)) {
		return nil, ErrUnauthenticated
	}
	at := time.UnixMilli(int64(binary.BigEndian.Uint64(header[17:25])))
	if d := now.Sub(at); d > AuthMaxAge || d < -AuthMaxAge {
		return nil, ErrStale
	}
	sender := [8]byte(header[1:9])
	if !a.fresh(sender, binary.BigEndian.Uint64(header[9:17]), now) {
		return nil, ErrReplayed
	}
	return payload, nil
}

// fresh records counter ctr of sender, reporting false if it was seen
// or is too old to tell.
func (a *auth) fresh(sender [8]byte, ctr uint64, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.peers[sender]
	if w == nil {
		if len(a.peers) >= maxSenders {
			for s, p := range a.peers { // sorted: deletions only
				if now.Sub(p.last) > AuthMaxAge {
					delete(a.peers, s)
				}
			}
			if len(a.peers) >= maxSenders {
				return false // forgetting one would reopen its replays
			}
		}
		a.peers[sender] = &window{top: ctr, seen: 1, last: now}
		return true
	}
	w.last = now
	switch {
	case ctr > w.top:
		if shift := ctr - w.top; shift >= replayWindow {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.seen |= 1
		w.top = ctr
		return true
	case w.top-ctr >= replayWindow:
		return false
	default:
		bit := uint64(1) << (w.top - ctr)
		if w.seen&bit != 0 {
			return false
		}
		w.seen |= bit
		return true
	}
}
