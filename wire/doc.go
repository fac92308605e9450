// Package wire is the wire format of the Cosnim relay protocol: frame
// types, their byte layouts, and a codec over bytes (not over connections).
// PROTOCOL.md at the repository root is the long form; the one-line layout
// comments on the Type constants are the short form, kept in step.
//
// Protocol flow:
//
//	client                               relay
//	Hello{min,max,agent}        ──▶
//	                            ◀──      Welcome{version,epoch,nonce,limits}
//	Join{handle,channel,proof}  ──▶
//	                            ◀──      Joined{handle,cached,flags} | Error(JoinDenied)
//	Sync{handle,session,msg}    ──▶      (catch-up; both sides answer every
//	                            ◀──      non-empty Sync, Delta frames first)
//	Announce{handle,seq,entries}──▶
//	                            ◀──      Ack{handle,seq}; Deliver to other members
//	Ping / Pong                 ◀─▶      heartbeats
//	                            ◀──      Drain{after,jitter,alternates} | Error
//
// Encoding: Append writes a frame with its header; each frame's
// AppendPayload writes just the payload. Both only append, so a caller that
// keeps a buffer of enough capacity encodes without allocating.
//
// Decoding: a Reader splits a stream into (type, payload) pairs, checking
// each length prefix against its Max before buffering anything, and Decode
// or a frame's DecodePayload parses a payload. DecodePayload reuses the
// frame's slices and never panics; it returns a *FrameError for a
// malformed payload, including trailing bytes. Every accepted payload has
// exactly one encoding, so encode(decode(p)) == p.
//
// Aliasing: byte slices in a decoded frame (entries) alias the payload,
// which aliases the Reader's input or its buffer. They are valid until fn
// returns from Reader.Feed, or until the caller reuses the buffer it
// decoded from; copy what must live longer (roster.Set.Add keeps what it is
// given, so copy sealed bytes before adding them). Strings are copied; IDs
// are copied into the frame's ID slices.
package wire
