package main

import (
	"slices"
	"testing"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

func TestRelayHubsCountsPools(t *testing.T) {
	const yaml = `relays:
  east-1: {client: {url: tcp://h1}, server: {url: tcp://:7421}}
  east-2: {client: {url: tcp://h2}, server: {url: tcp://:7422}}
  east-3: {client: {url: tcp://h3}, server: {url: tcp://:7423}}
continuum:
  relay: [east-1, east-2]
capsule_hubs:
  s3: {relay: {pool: [east-2, east-3], homes: 1}}
  gcs: {}
  disk: {relay: east-1}
`
	f, err := config.Parse([]byte(yaml), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		relay string
		want  []string
	}{
		{"east-1", []string{"disk", "gcs"}},
		{"east-2", []string{"gcs", "s3"}},
		{"east-3", []string{"s3"}},
	} {
		if got := relayHubs(f, tt.relay); !slices.Equal(got, tt.want) {
			t.Errorf("relayHubs(%s) = %q, want %q", tt.relay, got, tt.want)
		}
	}
}
