package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

func newConfigCmd() *cobra.Command {
	return newGroupCmd("config", "Inspect the configuration", newConfigCheckCmd())
}

// checkResult is the --json output of `config check`.
type checkResult struct {
	OK     bool     `json:"ok"`
	File   string   `json:"file"`
	Source string   `json:"source,omitempty"`
	Relays []string `json:"relays"`
	Error  string   `json:"error,omitempty"`
	// Warnings name certificates that expire within 30 days and private
	// keys that other users can read.
	Warnings []string `json:"warnings,omitempty"`
}

func newConfigCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration, certificates and keys included",
		Long: `check loads the configuration as every command does, then parses each
certificate and key it names. It prints "ok: N relays (names)" or every
problem found, as FILE:LINE: KEY.PATH: message, and exits non-zero on error.
A certificate that has expired or is not yet valid is an error; one that
expires within 30 days, and a private key file that its group or other
users can read, are warnings on stderr (and in --json's "warnings").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := checkResult{Relays: []string{}}
			f, err := loadConfig(cmd)
			if err == nil {
				res.File, res.Source = f.Name(), f.Source.String()
				res.Relays = f.RelayNames()
				warnings, _ := config.CertDates(f, time.Now(), nil, config.ClientSection|config.ServerSection)
				warnings = append(warnings, config.KeyPermissions(f, nil, config.ClientSection|config.ServerSection)...)
				for _, w := range warnings {
					res.Warnings = append(res.Warnings, w.Error())
					if !asJSON {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", w)
					}
				}
				err = config.Check(f)
			} else {
				path, _ := cmd.Flags().GetString("config")
				res.File = path
			}
			res.OK = err == nil
			if err != nil {
				res.Error = err.Error()
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, res, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "ok: %d relays (%s)\n", len(res.Relays), strings.Join(res.Relays, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
