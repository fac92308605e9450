package wire

import (
	"encoding/binary"
	"math/bits"

	"github.com/cosnim/relays/roster"
)

// decoder reads a payload front to back. The first failure is kept in
// reason; later reads return zero values, so parse functions check d.ok()
// only before loops and allocations.
type decoder struct {
	p      []byte
	reason string
}

func (d *decoder) ok() bool { return d.reason == "" }

func (d *decoder) fail(reason string) {
	if d.reason == "" {
		d.reason = reason
	}
	d.p = nil
}

// finish returns the decoding error for a frame of type t, if any.
func (d *decoder) finish(t Type) error {
	if d.reason == "" && len(d.p) != 0 {
		d.reason = "trailing bytes"
	}
	if d.reason != "" {
		return &FrameError{Type: t, Reason: d.reason}
	}
	return nil
}

// bytes returns the next n bytes, aliasing the payload, with cap == len so
// that appending to the result never overwrites the payload.
func (d *decoder) bytes(n int) []byte {
	if n > len(d.p) {
		d.fail("truncated")
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// uvarint reads a minimally encoded unsigned varint (encoding/binary form).
// Non-minimal forms are refused so that every value has one encoding.
func (d *decoder) uvarint() uint64 {
	if !d.ok() {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	switch {
	case n == 0:
		d.fail("truncated")
		return 0
	case n < 0:
		d.fail("varint overflows 64 bits")
		return 0
	case n != uvarintLen(v):
		d.fail("non-minimal varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// str reads a string of n bytes of at most max bytes.
func (d *decoder) str(n, max int) string {
	if n > max {
		d.fail("string over its limit")
		return ""
	}
	return string(d.bytes(n))
}

// count checks a declared element count against the bytes left, given the
// smallest encoding of one element, before anything is allocated for it.
func (d *decoder) count(n, minSize int) int {
	if n > len(d.p)/minSize {
		d.fail("count exceeds payload")
		return 0
	}
	return n
}

// entries reads an entries list into dst[:0]: u16 count, then per entry u16
// length (at least 1) and sealed bytes, which alias the payload.
func (d *decoder) entries(dst [][]byte) [][]byte {
	dst = dst[:0]
	n := d.count(int(d.u16()), 3)
	if cap(dst) < n {
		dst = make([][]byte, 0, n)
	}
	for range n {
		l := int(d.u16())
		if l == 0 && d.ok() {
			d.fail("empty entry")
		}
		e := d.bytes(l)
		if !d.ok() {
			break
		}
		dst = append(dst, e)
	}
	return dst
}

// ids reads uvarint n and n IDs into dst[:0].
func (d *decoder) ids(dst []roster.ID) []roster.ID {
	dst = dst[:0]
	v := d.uvarint()
	if v > uint64(len(d.p)/roster.IDSize) {
		d.fail("count exceeds payload")
		return dst
	}
	n := int(v)
	if cap(dst) < n {
		dst = make([]roster.ID, 0, n)
	}
	for range n {
		var id roster.ID
		copy(id[:], d.bytes(roster.IDSize))
		dst = append(dst, id)
	}
	return dst
}

// syncMsg reads a sync message into m, reusing its slices.
func (d *decoder) syncMsg(m *roster.SyncMsg) {
	// Smallest range: depth 0, mode, and an empty ID list.
	n := d.count(int(d.u16()), 3)
	rs := m.Ranges[:0]
	if cap(rs) < n {
		rs = make([]roster.Range, 0, n)
	}
	for i := 0; i < n && d.ok(); i++ {
		rs = rs[:i+1]
		d.syncRange(&rs[i])
	}
	if !d.ok() {
		rs = rs[:0]
	}
	m.Ranges = rs
	m.Want = d.ids(m.Want)
}

func (d *decoder) syncRange(r *roster.Range) {
	ids := r.IDs[:0]
	*r = roster.Range{}
	depth := d.u8()
	if depth > roster.MaxDepth {
		d.fail("node depth over MaxDepth")
		return
	}
	var prefix uint64
	for range (depth + 1) / 2 {
		prefix = prefix<<8 | uint64(d.u8())
	}
	if depth < 16 && prefix>>(4*depth) != 0 {
		d.fail("node prefix has bits above its depth")
		return
	}
	r.Node = roster.Node{Depth: depth, Prefix: prefix}
	r.Mode = roster.Mode(d.u8())
	switch r.Mode {
	case roster.ModeFingerprint:
		r.FP.Count = d.uvarint()
		copy(r.FP.Sum[:], d.bytes(len(r.FP.Sum)))
		r.IDs = ids
	case roster.ModeIDs:
		r.IDs = d.ids(ids)
	default:
		d.fail("unknown range mode")
	}
}
