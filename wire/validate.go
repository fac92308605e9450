package wire

import "github.com/cosnim/relays/roster"

// Validate reports, as a *FrameError, why f would not survive encoding
// unchanged: a text field over its limit (Append would clamp it), or a
// value the wire cannot carry or a peer would reject (an empty entry, an
// entry or list over 65535, a sync node deeper than roster.MaxDepth or with
// prefix bits above its depth, an unknown range mode, a range carrying
// what its mode does not send). It returns nil for
// frames that Append encodes faithfully. Validate does not check limits
// negotiated in the handshake, such as the maximum frame size.
func Validate(f Frame) error {
	reason := ""
	switch f := f.(type) {
	case *Hello:
		if len(f.Agent) > MaxAgentLen {
			reason = "agent over MaxAgentLen"
		}
	case *Welcome:
		if len(f.Limits) > 255 {
			reason = "more than 255 limits"
		}
	case *Announce:
		reason = checkEntries(f.Entries)
	case *Deliver:
		reason = checkEntries(f.Entries)
	case *Delta:
		reason = checkEntries(f.Entries)
	case *Sync:
		reason = checkSync(&f.Msg)
	case *Drain:
		if len(f.Alternates) > MaxAlternates {
			reason = "more than MaxAlternates alternates"
		}
		for _, a := range f.Alternates {
			if len(a) > MaxAlternateLen {
				reason = "alternate over MaxAlternateLen"
			}
		}
	case *Error:
		if len(f.Text) > MaxErrorText {
			reason = "text over MaxErrorText"
		}
	}
	if reason != "" {
		return &FrameError{Type: f.FrameType(), Reason: reason}
	}
	return nil
}

func checkEntries(entries [][]byte) string {
	if len(entries) > 0xFFFF {
		return "more than 65535 entries"
	}
	for _, e := range entries {
		if len(e) == 0 {
			return "empty entry"
		}
		if len(e) > 0xFFFF {
			return "entry over 65535 bytes"
		}
	}
	return ""
}

func checkSync(m *roster.SyncMsg) string {
	if len(m.Ranges) > 0xFFFF {
		return "more than 65535 ranges"
	}
	for i := range m.Ranges {
		r := &m.Ranges[i]
		d := r.Node.Depth
		switch {
		case d > roster.MaxDepth:
			return "node depth over MaxDepth"
		case d < 16 && r.Node.Prefix>>(4*d) != 0:
			return "node prefix has bits above its depth"
		case r.Mode != roster.ModeFingerprint && r.Mode != roster.ModeIDs:
			return "unknown range mode"
		case r.Mode == roster.ModeFingerprint && len(r.IDs) > 0:
			return "IDs in a fingerprint range"
		case r.Mode == roster.ModeIDs && r.FP != (roster.Fingerprint{}):
			return "fingerprint in an ID range"
		}
	}
	return ""
}
