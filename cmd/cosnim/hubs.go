package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

// relayHubs lists, sorted, the capsule hubs of f that use relay name:
// those whose relay (or pool) names it, and those naming no relay when
// the continuum's does.
func relayHubs(f *config.File, name string) []string {
	var hubs []string
	for hub := range f.CapsuleHubs { // sorted: below
		if f.HubRelay(hub).Has(name) {
			hubs = append(hubs, hub)
		}
	}
	sort.Strings(hubs)
	return hubs
}

// configName names f in a sentence: "the built-in configuration" or its
// file.
func configName(f *config.File) string {
	if f.Path == "" {
		return "the built-in configuration"
	}
	return f.Name()
}

// resolveHubs returns the --hub values given (empty ones dropped) or,
// without any, the hubs the configuration names for relay name: exactly
// one when one is set, else all of them. With none to use it says why.
func resolveHubs(cmd *cobra.Command, name string, given []string, one bool) ([]string, error) {
	var hubs []string
	for _, h := range given {
		if h != "" {
			hubs = append(hubs, h)
		}
	}
	if len(hubs) > 0 {
		return hubs, nil
	}
	f, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := f.Relay(name); err != nil {
		return nil, err
	}
	configured := relayHubs(f, name)
	switch {
	case len(configured) == 0:
		return nil, usageError(fmt.Errorf("--hub is required: %s names no capsule hubs for relay %s; pass --hub HUB, or list hubs under capsule_hubs (HUB: {relay: %s})", configName(f), name, name))
	case one && len(configured) > 1:
		return nil, usageError(fmt.Errorf("--hub is required: %s names %d capsule hubs that use relay %s (%s); say which", f.Name(), len(configured), name, strings.Join(configured, ", ")))
	}
	return configured, nil
}
