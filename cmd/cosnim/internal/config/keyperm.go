package config

import (
	"errors"

	"github.com/cosnim/relays/internal/files"
)

// ErrKeyPermissions: a private key, creds or seed file that its group or
// other users may read or write (a warning).
var ErrKeyPermissions = errors.New("config: private key file open to other users")

// KeyPermissions warns about each private key file of the sections s of
// the named relays (every relay when relays is empty) whose mode lets its
// group or others in (files.LoosePermissions). Files that cannot be looked
// at are left to Load and Check.
func KeyPermissions(f *File, relays []string, s Sections) Errors {
	if len(relays) == 0 {
		relays = f.RelayNames()
	}
	warn := &decoder{name: f.Name(), lines: f.lines}
	for _, name := range relays {
		r := f.Relays[name]
		if r == nil {
			continue
		}
		p := "relays." + name
		var keys [][2]string // key path, file
		if s&ClientSection != 0 {
			keys = append(keys, [2]string{p + ".client.key_file", r.Client.KeyFile})
		}
		if s&ServerSection != 0 {
			b, bp := &r.Server.Backbone, p+".server.backbone"
			keys = append(keys, [2]string{p + ".server.private_key_file", r.Server.PrivateKeyFile},
				[2]string{bp + ".key_file", b.KeyFile}, [2]string{bp + ".creds_file", b.CredsFile}, [2]string{bp + ".nkey_seed_file", b.NKeySeedFile})
		}
		for _, k := range keys {
			if k[1] == "" {
				continue
			}
			if mode, loose := files.LoosePermissions(k[1]); loose {
				warn.failAt(k[0], newProblem(ErrKeyPermissions, "%s has mode %04o: its group or other users can read it; chmod 600 it (or 640 for a service group)", k[1], mode))
			}
		}
	}
	return warn.errs.sorted()
}
