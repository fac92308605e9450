package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/internal/buildinfo"
)

// versionString is the root command's --version text.
func versionString() string { return buildinfo.Get().String() }

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print what this binary was built from",
		Long: `version prints the module version, the VCS revision and commit time, whether
the tree had uncommitted changes, and the Go version. A binary built outside
a checkout (or with -buildvcs=false) has no revision; go install of a
tagged release reports the tag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Get()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			unknown := func(s string) string {
				if s == "" {
					return "unknown"
				}
				return s
			}
			fmt.Fprintf(out, "cosnim %s\n", in.Version)
			fmt.Fprintf(out, "  revision  %s\n", unknown(in.Revision))
			fmt.Fprintf(out, "  time      %s\n", unknown(in.Time))
			fmt.Fprintf(out, "  modified  %t\n", in.Modified)
			fmt.Fprintf(out, "  go        %s\n", in.GoVersion)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the build as JSON")
	return cmd
}
