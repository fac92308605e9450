package wire

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/cosnim/relays/roster"
)

// Magic opens every Hello payload. A client's first bytes are a length
// prefix (0x00 ...) then TypeHello and Magic, which no TLS ClientHello
// (0x16 0x03 ...) resembles, so a relay can serve both on one port.
const Magic = "CSNM"

// DefaultPort is the relay's TCP port when a tcp:// or tcps:// URL names
// none.
const DefaultPort = 7420

// Text limits, enforced by DecodePayload. AppendPayload clamps instead of
// failing: Agent and Text are cut at the limit (at a UTF-8 character
// boundary), alternates past MaxAlternates are left out, and so is any
// alternate longer than MaxAlternateLen (a cut URL would be wrong).
const (
	MaxAgentLen     = 255
	MaxErrorText    = 1024
	MaxAlternates   = 16
	MaxAlternateLen = 512
)

// joinSize is the fixed size of a Join payload.
const joinSize = 4 + 32 + roster.PublicKeySize + roster.SignatureSize

var be = binary.BigEndian

// clamp cuts s to at most max bytes without splitting a UTF-8 character.
func clamp(s string, max int) string {
	if len(s) <= max {
		return s
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func appendEntries(b []byte, entries [][]byte) []byte {
	b = be.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = be.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

func appendIDs(b []byte, ids []roster.ID) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for i := range ids {
		b = append(b, ids[i][:]...)
	}
	return b
}

func appendSyncMsg(b []byte, m *roster.SyncMsg) []byte {
	b = be.AppendUint16(b, uint16(len(m.Ranges)))
	for i := range m.Ranges {
		r := &m.Ranges[i]
		d := r.Node.Depth
		b = append(b, d)
		p := r.Node.Prefix
		if d < 16 {
			p &= 1<<(4*d) - 1
		}
		for j := int(d+1)/2 - 1; j >= 0; j-- {
			b = append(b, byte(p>>(8*uint(j))))
		}
		b = append(b, byte(r.Mode))
		switch r.Mode {
		case roster.ModeFingerprint:
			b = binary.AppendUvarint(b, r.FP.Count)
			b = append(b, r.FP.Sum[:]...)
		case roster.ModeIDs:
			b = appendIDs(b, r.IDs)
		}
	}
	return appendIDs(b, m.Want)
}

// FrameType implements Frame.
func (*Hello) FrameType() Type { return TypeHello }

// AppendPayload implements Frame. Agent is clamped to MaxAgentLen.
func (f *Hello) AppendPayload(b []byte) []byte {
	b = append(b, Magic...)
	b = be.AppendUint16(b, f.MinVersion)
	b = be.AppendUint16(b, f.MaxVersion)
	a := clamp(f.Agent, MaxAgentLen)
	b = append(b, uint8(len(a)))
	return append(b, a...)
}

// DecodePayload implements Frame.
func (f *Hello) DecodePayload(p []byte) error {
	d := decoder{p: p}
	if string(d.bytes(len(Magic))) != Magic && d.ok() {
		d.fail("bad magic")
	}
	f.MinVersion = d.u16()
	f.MaxVersion = d.u16()
	f.Agent = d.str(int(d.u8()), MaxAgentLen)
	return d.finish(TypeHello)
}

// FrameType implements Frame.
func (*Welcome) FrameType() Type { return TypeWelcome }

// AppendPayload implements Frame. At most 255 limits are sent.
func (f *Welcome) AppendPayload(b []byte) []byte {
	b = be.AppendUint16(b, f.Version)
	b = be.AppendUint64(b, f.Epoch)
	b = append(b, f.Nonce[:]...)
	ls := f.Limits[:min(len(f.Limits), 255)]
	b = append(b, uint8(len(ls)))
	for _, l := range ls {
		b = be.AppendUint16(b, uint16(l.Key))
		b = binary.AppendUvarint(b, l.Value)
	}
	return b
}

// DecodePayload implements Frame. Unknown limit keys are kept; users
// ignore them.
func (f *Welcome) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Version = d.u16()
	f.Epoch = d.u64()
	copy(f.Nonce[:], d.bytes(len(f.Nonce)))
	n := d.count(int(d.u8()), 3)
	ls := f.Limits[:0]
	if cap(ls) < n {
		ls = make([]Limit, 0, n)
	}
	for i := 0; i < n && d.ok(); i++ {
		ls = append(ls, Limit{Key: LimitKey(d.u16()), Value: d.uvarint()})
	}
	f.Limits = ls
	return d.finish(TypeWelcome)
}

// Limit returns the value of the first limit with key k.
func (f *Welcome) Limit(k LimitKey) (uint64, bool) {
	for _, l := range f.Limits {
		if l.Key == k {
			return l.Value, true
		}
	}
	return 0, false
}

// FrameType implements Frame.
func (*Join) FrameType() Type { return TypeJoin }

// AppendPayload implements Frame.
func (f *Join) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	b = append(b, f.Channel[:]...)
	b = append(b, f.Pub[:]...)
	return append(b, f.Sig[:]...)
}

// DecodePayload implements Frame.
func (f *Join) DecodePayload(p []byte) error {
	d := decoder{p: p}
	if len(p) < joinSize {
		d.fail("truncated")
	}
	f.Handle = d.u32()
	copy(f.Channel[:], d.bytes(len(f.Channel)))
	copy(f.Pub[:], d.bytes(len(f.Pub)))
	copy(f.Sig[:], d.bytes(len(f.Sig)))
	return d.finish(TypeJoin)
}

// FrameType implements Frame.
func (*Joined) FrameType() Type { return TypeJoined }

// AppendPayload implements Frame.
func (f *Joined) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	b = be.AppendUint32(b, f.Cached)
	return append(b, f.Flags)
}

// DecodePayload implements Frame.
func (f *Joined) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Cached = d.u32()
	f.Flags = d.u8()
	return d.finish(TypeJoined)
}

// FrameType implements Frame.
func (*Leave) FrameType() Type { return TypeLeave }

// AppendPayload implements Frame.
func (f *Leave) AppendPayload(b []byte) []byte { return be.AppendUint32(b, f.Handle) }

// DecodePayload implements Frame.
func (f *Leave) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	return d.finish(TypeLeave)
}

// FrameType implements Frame.
func (*Announce) FrameType() Type { return TypeAnnounce }

// AppendPayload implements Frame.
func (f *Announce) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	b = be.AppendUint32(b, f.Seq)
	return appendEntries(b, f.Entries)
}

// DecodePayload implements Frame. Entries alias p.
func (f *Announce) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Seq = d.u32()
	f.Entries = d.entries(f.Entries)
	return d.finish(TypeAnnounce)
}

// FrameType implements Frame.
func (*Ack) FrameType() Type { return TypeAck }

// AppendPayload implements Frame.
func (f *Ack) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	return be.AppendUint32(b, f.Seq)
}

// DecodePayload implements Frame.
func (f *Ack) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Seq = d.u32()
	return d.finish(TypeAck)
}

// FrameType implements Frame.
func (*Deliver) FrameType() Type { return TypeDeliver }

// AppendPayload implements Frame.
func (f *Deliver) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	return appendEntries(b, f.Entries)
}

// DecodePayload implements Frame. Entries alias p.
func (f *Deliver) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Entries = d.entries(f.Entries)
	return d.finish(TypeDeliver)
}

// FrameType implements Frame.
func (*Sync) FrameType() Type { return TypeSync }

// AppendPayload implements Frame. Node prefixes are masked to their depth.
func (f *Sync) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	b = be.AppendUint32(b, f.Session)
	b = append(b, f.Flags)
	return appendSyncMsg(b, &f.Msg)
}

// DecodePayload implements Frame. IDs are copied; Ranges, their IDs and
// Want reuse f's slices.
func (f *Sync) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Session = d.u32()
	f.Flags = d.u8()
	if f.Flags&^SyncMore != 0 {
		d.fail("unknown sync flags")
	}
	d.syncMsg(&f.Msg)
	return d.finish(TypeSync)
}

// FrameType implements Frame.
func (*Delta) FrameType() Type { return TypeDelta }

// AppendPayload implements Frame.
func (f *Delta) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.Handle)
	b = be.AppendUint32(b, f.Session)
	return appendEntries(b, f.Entries)
}

// DecodePayload implements Frame. Entries alias p.
func (f *Delta) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Handle = d.u32()
	f.Session = d.u32()
	f.Entries = d.entries(f.Entries)
	return d.finish(TypeDelta)
}

// FrameType implements Frame.
func (*Ping) FrameType() Type { return TypePing }

// AppendPayload implements Frame.
func (f *Ping) AppendPayload(b []byte) []byte { return be.AppendUint64(b, f.Data) }

// DecodePayload implements Frame.
func (f *Ping) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Data = d.u64()
	return d.finish(TypePing)
}

// FrameType implements Frame.
func (*Pong) FrameType() Type { return TypePong }

// AppendPayload implements Frame.
func (f *Pong) AppendPayload(b []byte) []byte { return be.AppendUint64(b, f.Data) }

// DecodePayload implements Frame.
func (f *Pong) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Data = d.u64()
	return d.finish(TypePong)
}

// FrameType implements Frame.
func (*Drain) FrameType() Type { return TypeDrain }

// AppendPayload implements Frame. It sends the first MaxAlternates
// alternates that are at most MaxAlternateLen bytes long.
func (f *Drain) AppendPayload(b []byte) []byte {
	b = be.AppendUint32(b, f.AfterMillis)
	b = be.AppendUint32(b, f.JitterMillis)
	at := len(b)
	b = append(b, 0)
	n := 0
	for _, a := range f.Alternates {
		if n == MaxAlternates {
			break
		}
		if len(a) > MaxAlternateLen {
			continue
		}
		b = be.AppendUint16(b, uint16(len(a)))
		b = append(b, a...)
		n++
	}
	b[at] = uint8(n)
	return b
}

// DecodePayload implements Frame.
func (f *Drain) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.AfterMillis = d.u32()
	f.JitterMillis = d.u32()
	n := int(d.u8())
	if n > MaxAlternates {
		d.fail("too many alternates")
	}
	n = d.count(n, 2)
	as := f.Alternates[:0]
	if cap(as) < n {
		as = make([]string, 0, n)
	}
	for i := 0; i < n && d.ok(); i++ {
		as = append(as, d.str(int(d.u16()), MaxAlternateLen))
	}
	f.Alternates = as
	return d.finish(TypeDrain)
}

// FrameType implements Frame.
func (*Error) FrameType() Type { return TypeError }

// AppendPayload implements Frame. Text is clamped to MaxErrorText.
func (f *Error) AppendPayload(b []byte) []byte {
	b = be.AppendUint16(b, uint16(f.Code))
	b = be.AppendUint32(b, f.Handle)
	b = append(b, f.Flags)
	t := clamp(f.Text, MaxErrorText)
	b = be.AppendUint16(b, uint16(len(t)))
	return append(b, t...)
}

// DecodePayload implements Frame.
func (f *Error) DecodePayload(p []byte) error {
	d := decoder{p: p}
	f.Code = Code(d.u16())
	f.Handle = d.u32()
	f.Flags = d.u8()
	f.Text = d.str(int(d.u16()), MaxErrorText)
	return d.finish(TypeError)
}

// Fatal reports whether the sender closes the connection after f.
func (f *Error) Fatal() bool { return f.Flags&ErrorFatal != 0 }
