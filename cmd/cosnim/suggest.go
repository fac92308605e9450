package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cosnim/relays/internal/editdist"
)

// suggestDistance is the edit distance within which a mistyped command
// or flag gets a suggestion (cobra's default for the root).
const suggestDistance = 2

// usageError is a command line that cannot run; it exits exitUsage.
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// groupArgs refuses arguments to a command that only groups others,
// suggesting the subcommand that was probably meant.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + orList(s) + "?"
	}
	return usageError(fmt.Errorf("%s (see %s --help)", msg, cmd.CommandPath()))
}

// argsAreUsage makes the argument checks of c and every command below it
// fail as usage errors (exitUsage), pointing at the command's help.
func argsAreUsage(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ee *exitError
			if err == nil || errors.As(err, &ee) {
				return err
			}
			return usageError(fmt.Errorf("%s: %w (see %s --help)", cmd.CommandPath(), err, cmd.CommandPath()))
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// flagError turns a flag parsing error into a usage error, suggesting
// the flag that was probably meant.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) && ne.GetSpecifiedShortnames() == "" {
		var names []string
		typed := ne.GetSpecifiedName()
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && (editdist.Levenshtein(strings.ToLower(typed), strings.ToLower(f.Name)) <= suggestDistance || strings.HasPrefix(f.Name, typed)) {
				names = append(names, "--"+f.Name)
			}
		})
		if len(names) > 0 {
			return usageError(fmt.Errorf("%w; did you mean %s?", err, orList(names)))
		}
	}
	return usageError(fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath()))
}

// orList writes "a", "a or b", "a, b or c".
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
