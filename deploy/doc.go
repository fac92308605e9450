// Package deploy holds what an operator installs a relay with: a systemd
// unit, a container recipe, a Kubernetes example, a Grafana dashboard,
// Prometheus alerting rules and an example configuration. It has no code;
// its tests check each file against the real binary and a live relay.
package deploy
