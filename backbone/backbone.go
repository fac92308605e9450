// Package backbone is the seam between the relay core and the message bus
// that links the relays of a pool. It holds only interfaces and sentinel
// errors, so the core that imports it links no network code. The
// production driver speaks NATS (backbone/nats); the deterministic one is
// netsim's simulated bus.
//
// A Bus gives NATS core's promise and no more: a message published on a
// subject reaches, at most once, every other subscriber of that subject
// that is connected, in publish order per publisher; it may be lost. A
// subscriber never receives its own publishes (NATS's no-echo). What a
// relay publishes is what it would send a client: sealed entries, which
// the bus can neither read nor forge.
//
// Cores are single-threaded: a driver calls a Handler's methods one at a
// time, on the same event context as the relay's transport events.
package backbone

import (
	"errors"
	"time"
)

// Errors a Response may carry.
var (
	// ErrNoResponders reports a request that no subscriber received.
	ErrNoResponders = errors.New("backbone: no responders")
	// ErrTimeout reports a request that got no reply in time.
	ErrTimeout = errors.New("backbone: request timed out")
	// ErrDown reports a request made while the bus was disconnected.
	ErrDown = errors.New("backbone: not connected")
)

// RequestTimeout is how long a driver waits for the first reply to a
// Request before reporting ErrTimeout. The relay core holds a Joined for a
// channel it is reconciling at most this long, so it is one value for
// every driver.
const RequestTimeout = 2 * time.Second

// ReplyWindow is how long after a Request's first reply a driver goes on
// delivering further replies to it: every relay of the pool answers, and
// the core weighs their word against each other's (no single reply may
// make a cache complete), so it sees them all.
const ReplyWindow = 200 * time.Millisecond

// Bus is the backbone as the relay core sees it. Its methods never block
// and are called only from the core's event context; each copies data, so
// the caller may reuse it at once. While the bus is down, publishes are
// dropped (reconciliation repairs them) and requests fail with ErrDown.
type Bus interface {
	// Subscribe starts delivery of subject's messages as Handler.Message.
	// Subscribing twice to one subject is one subscription.
	Subscribe(subject string)
	// Unsubscribe stops it.
	Unsubscribe(subject string)
	// Publish sends data to every other subscriber of subject.
	Publish(subject string, data []byte)
	// Request publishes data on subject with a reply address. The first
	// reply, or an error, arrives as Handler.Response with the same id;
	// replies arriving within ReplyWindow after the first arrive too, each
	// as a Response of their own, and the request ends then.
	Request(subject string, data []byte, id uint64)
	// Respond answers a Message that carried a reply address.
	Respond(reply string, data []byte)
}

// Msg is one message delivered from the bus.
type Msg struct {
	Subject string
	// Reply is where Respond sends an answer; "" for a plain publish.
	Reply string
	// Data is valid only during the call.
	Data []byte
}

// Handler is what a backbone driver calls to feed the relay core.
type Handler interface {
	// Message hands over a message on a subscribed subject.
	Message(m Msg, now time.Time)
	// Response answers Request id: data is a reply (the first, or one
	// within ReplyWindow after it), or err says why there is none
	// (ErrNoResponders, ErrTimeout, ErrDown).
	Response(id uint64, data []byte, err error, now time.Time)
	// BusState reports the bus connecting (up) or losing its connection.
	// After a reconnect, subscriptions are restored by the driver, but
	// messages published meanwhile were lost.
	BusState(up bool, now time.Time)
}
