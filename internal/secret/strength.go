package secret

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"math"
	"strings"
	"unicode"
)

// MinBits is the estimated entropy below which a continuum secret is
// called weak. Stretching makes each guess cost about 0.1 s of a core and
// 64 MiB, so 64 bits stays out of reach; a passphrase of a few words or a
// common password does not.
const MinBits = 64

// NewBits is the entropy of a secret made by New.
const NewBits = 256

// New returns NewBits random bits as unpadded base64url (43 characters),
// a secret that needs no stretching to be safe.
func New() string {
	b := make([]byte, NewBits/8)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

//go:embed common.txt
var commonText string

// common holds well-known passwords, lower case, from common.txt.
var common = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(commonText) {
		m[w] = true
	}
	return m
}()

// commonBits is what a common password is worth: its rank in lists an
// attacker tries first.
const commonBits = 10

// wordBits is what a dictionary word is worth in a passphrase: about one
// in 8,000 common words.
const wordBits = 13

// separatorBits is what a lone punctuation character (a space, a dash)
// is worth.
const separatorBits = 2

// Strength estimates the entropy of a secret, in bits, and when it is
// weak says why. It is a guesser's estimate, not a proof: the secret is
// cut into runs of letters, of digits and of other characters; a run of
// letters that reads like a word counts as one word of a dictionary
// (wordBits), a lone punctuation character separatorBits, other runs
// their length times the bits of their character class; repeats ("aaaa") and sequences ("1234", "abcd") count
// once; a common password (or one with digits appended) counts
// commonBits.
func Strength(s []byte) (bits float64, weak string) {
	text := string(s)
	low := strings.ToLower(text)
	if common[low] || common[strings.TrimRightFunc(low, unicode.IsDigit)] {
		return commonBits, "it is a common password"
	}
	words := 0
	for _, run := range runs(text) {
		b, word := runBits(run)
		bits += b
		if word {
			words++
		}
	}
	switch {
	case bits >= MinBits:
		return bits, ""
	case words > 0:
		return bits, "it is made of words"
	}
	return bits, "it is too short or too regular"
}

// runs cuts s into maximal runs of letters, of digits, and of anything
// else.
func runs(s string) []string {
	var out []string
	class := func(r rune) int {
		switch {
		case unicode.IsLetter(r):
			return 1
		case unicode.IsDigit(r):
			return 2
		}
		return 3
	}
	start, prev := 0, 0
	for i, r := range s {
		c := class(r)
		if i > 0 && c != prev {
			out = append(out, s[start:i])
			start = i
		}
		prev = c
	}
	if s != "" {
		out = append(out, s[start:])
	}
	return out
}

// runBits estimates one run and reports whether it read as a word.
func runBits(run string) (bits float64, word bool) {
	rs := []rune(run)
	pool := 0.0
	var lower, upper, other bool
	for _, r := range rs {
		switch {
		case unicode.IsDigit(r):
			pool = 10
		case r < unicode.MaxASCII && unicode.IsLower(r):
			lower = true
		case r < unicode.MaxASCII && unicode.IsUpper(r):
			upper = true
		case r < unicode.MaxASCII:
			pool = 33 // ASCII punctuation and space
		default:
			other = true
		}
	}
	if lower {
		pool += 26
	}
	if upper {
		pool += 26
	}
	if other {
		pool += 100
	}
	if len(rs) == 1 && pool == 33 {
		return separatorBits, false // between words: which separator is a guess of few
	}
	if wordlike(rs) {
		bits = wordBits
		if upper && unicode.IsUpper(rs[0]) {
			bits++ // capitalised
		}
		return bits, true
	}
	n := 0.0
	for i, r := range rs {
		if i > 0 && (r == rs[i-1] || r == rs[i-1]+1 || r == rs[i-1]-1) {
			continue // a repeat or a sequence adds little
		}
		n++
	}
	return n * math.Log2(max(pool, 2)), false
}

// wordlike reports a run of letters that could be a dictionary word: three
// to fourteen letters, lower case but perhaps the first, with vowels, no
// more than three consonants in a row.
func wordlike(rs []rune) bool {
	if len(rs) < 3 || len(rs) > 14 {
		return false
	}
	vowels, row := 0, 0
	for i, r := range rs {
		if !unicode.IsLetter(r) || r > unicode.MaxASCII || i > 0 && unicode.IsUpper(r) {
			return false
		}
		if strings.ContainsRune("aeiouyAEIOUY", r) {
			vowels++
			row = 0
			continue
		}
		if row++; row > 3 {
			return false
		}
	}
	return vowels > 0
}
