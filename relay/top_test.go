package relay

import (
	"fmt"
	"testing"

	"github.com/cosnim/relays/roster"
)

// TestTopChannels checks the bounded insertion against a plain sort of
// every channel.
func TestTopChannels(t *testing.T) {
	r := &Relay{channels: map[roster.ChannelID]*channel{}}
	for i := range 25 {
		var id roster.ChannelID
		id[0], id[1] = byte(i*37), byte(i)
		r.channels[id] = &channel{id: id, bytes: int64(i % 7 * 100)} // ties on bytes
	}
	got := r.TopChannels(MaxTopChannels + 5)
	if len(got) != MaxTopChannels {
		t.Fatalf("got %d channels, want %d", len(got), MaxTopChannels)
	}
	var all []*channel
	for _, ch := range r.channels { // sorted: below
		all = append(all, ch)
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if ranksBefore(all[j], all[i]) {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	for i, g := range got {
		want := fmt.Sprintf("%x", all[i].id[:4])
		if g.ID != want || g.Bytes != all[i].bytes {
			t.Errorf("top[%d] = %+v, want id %s bytes %d", i, g, want, all[i].bytes)
		}
	}
	if n := len(r.TopChannels(3)); n != 3 {
		t.Errorf("TopChannels(3) gave %d", n)
	}
	if n := len(r.TopChannels(0)); n != 0 {
		t.Errorf("TopChannels(0) gave %d", n)
	}
}
