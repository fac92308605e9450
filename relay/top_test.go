package relay

import (
	"fmt"
	"testing"
	"time"

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
	got := r.TopChannels(MaxTopChannels+5, time.Unix(1, 0))
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
	if n := len(r.TopChannels(3, time.Unix(1, 0))); n != 3 {
		t.Errorf("TopChannels(3) gave %d", n)
	}
	if n := len(r.TopChannels(0, time.Unix(1, 0))); n != 0 {
		t.Errorf("TopChannels(0) gave %d", n)
	}
}

// The view is computed once per topMaxAge however often it is asked for,
// and then follows the channels again.
func TestTopChannelsCached(t *testing.T) {
	r := &Relay{channels: map[roster.ChannelID]*channel{}}
	var a, b roster.ChannelID
	a[0], b[0] = 1, 2
	r.channels[a] = &channel{id: a, bytes: 100}
	r.channels[b] = &channel{id: b, bytes: 50}
	t0 := time.Unix(1000, 0)
	if got := r.TopChannels(1, t0); len(got) != 1 || got[0].Bytes != 100 {
		t.Fatalf("first view %+v, want channel a's 100 bytes", got)
	}
	r.channels[b].bytes = 500
	got := r.TopChannels(2, t0.Add(topMaxAge-time.Millisecond))
	if len(got) != 2 || got[0].Bytes != 100 {
		t.Fatalf("view within topMaxAge %+v, want the cached one (a first)", got)
	}
	got[0].Bytes = -1 // the caller's copy
	if got := r.TopChannels(2, t0.Add(topMaxAge)); len(got) != 2 || got[0].Bytes != 500 {
		t.Fatalf("view after topMaxAge %+v, want b's 500 bytes first", got)
	}
}
