// Package config loads and validates the cosnim YAML configuration.
//
// A configuration file names relays (each with a client and a server
// section), the relay the continuum uses, and the relay each capsule hub
// uses. Load finds the file (see [Load] for the search order), parses it
// with line numbers kept, decodes it into typed structs on top of
// [Defaults], and validates it; every problem is reported as an [*Error]
// that names the file, the line and the key path, for example
//
//	cosnim.yaml:12: relays.main.server.ssl_cert_file: file not found: /x/y.pem
//
// Key names treat '_' and '-' alike ("ca-cert_file" is "ca_cert_file"), as
// the published Cosnim documentation mixes both. Names the user chooses
// (relay and hub names) are kept exactly as written.
//
// Load checks only what it can check cheaply (structure, types, ranges and
// that named files exist and are readable); [Check] goes further and parses
// the certificates and keys, as `cosnim config check` does.
//
// The package reads no environment variable except COSNIM_CONFIG, and only
// inside Load when it is given no path.
package config
