package wirepeer

import (
	"fmt"

	"github.com/cosnim/relays/roster"
	"github.com/cosnim/relays/wire"
)

// RemoteError is an Error frame the relay sent where the caller expected
// something else.
type RemoteError struct{ Frame wire.Error }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s: %s", e.Frame.Code, e.Frame.Text)
}

// HelloFrame opens a connection as agent, offering every version this
// build speaks.
func HelloFrame(agent string) *wire.Hello {
	return &wire.Hello{MinVersion: 1, MaxVersion: wire.Version, Agent: agent}
}

// JoinFrame joins k's channel under handle, proving knowledge of the join
// key with the nonce of the relay's Welcome.
func JoinFrame(k *roster.Keys, handle uint32, nonce [roster.JoinNonceSize]byte) *wire.Join {
	pub, sig := k.JoinProof(nonce)
	return &wire.Join{Handle: handle, Channel: k.ID(), Pub: pub, Sig: sig}
}

// PongFor decodes the payload of a Ping and returns its answer.
func PongFor(payload []byte) (*wire.Pong, error) {
	var p wire.Ping
	if err := p.DecodePayload(payload); err != nil {
		return nil, err
	}
	return &wire.Pong{Data: p.Data}, nil
}

// maxFrameOf returns the frame limit a Welcome advertises, or the default.
func maxFrameOf(w *wire.Welcome) int {
	for _, l := range w.Limits {
		if l.Key == wire.LimitMaxFrameSize && l.Value > 0 && l.Value <= 1<<30 {
			return int(l.Value)
		}
	}
	return wire.DefaultMaxFrameSize
}
