package main

import (
	"fmt"

	"github.com/spf13/cobra"

	isecret "github.com/cosnim/relays/internal/secret"
)

// newSecretCmd builds `cosnim secret` and its commands.
func newSecretCmd() *cobra.Command {
	return newGroupCmd("secret", "Make continuum secrets", newSecretNewCmd())
}

func newSecretNewCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "new",
		Short: "Print a new random continuum secret",
		Long: fmt.Sprintf(`new prints %d random bits from the system's secure random source,
encoded as unpadded base64url (RFC 4648 §5: A-Z a-z 0-9 - _, %d
characters), and a newline. Every instance of a continuum needs the same
secret: keep it in a file that only they can read and give the file with
--continuum-key-file (or its content in $%s).

  cosnim secret new > continuum.key && chmod 600 continuum.key`, isecret.NewBits, (isecret.NewBits+5)/6, EnvContinuumKey),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), isecret.New())
			return err
		},
	}
}
