package wire

import (
	"errors"
	"testing"
)

func TestSniffFirst(t *testing.T) {
	welcome := Append(nil, &Welcome{Version: 1})
	big := []byte{0, 1, 0, 0, byte(TypeWelcome)} // exactly the default limit
	for _, tc := range []struct {
		name string
		in   []byte
		want Foreign // 0: a relay
	}{
		{"welcome", welcome, 0},
		{"one zero byte", []byte{0}, 0},
		{"frame at the limit", big, 0},
		{"nothing yet", nil, 0},
		{"TLS notice", []byte(TLSRequiredNotice), ForeignTLSRequired},
		{"TLS notice, first part", []byte(TLSRequiredNotice[:20]), ForeignTLSRequired},
		{"TLS alert", []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}, ForeignTLS},
		{"TLS handshake", []byte{0x16, 0x03, 0x03, 0x00, 0x7a}, ForeignTLS},
		{"HTTP", []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"), ForeignHTTP},
		{"SSH", []byte("SSH-2.0-OpenSSH_9.6\r\n"), ForeignOther},
		{"binary", []byte{0x7f, 0xff, 0x00}, ForeignOther},
		{"length over the first-frame limit", []byte{0, 2, 0, 0}, ForeignOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := SniffFirst(tc.in)
			var fe *ForeignError
			switch {
			case tc.want == 0 && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tc.want != 0 && (!errors.As(err, &fe) || fe.Kind != tc.want || !errors.Is(err, ErrNotRelay)):
				t.Fatalf("got %v, want kind %d wrapping ErrNotRelay", err, tc.want)
			}
		})
	}
	err := SniffFirst([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	if want := `wire: not a relay: the peer said "SSH-2.0-OpenSSH_9.6"`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if err := SniffFirst([]byte{0x7f, 0xff, 0x00}); err.(*ForeignError).Line != "" {
		t.Errorf("binary bytes quoted: %q", err.(*ForeignError).Line)
	}
}
