package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cosnim/relays/cmd/cosnim/internal/config"
)

// newRootCmd builds the whole command tree: every command is added here
// or under newRelayCmd. Persistent flags: --config, --log-format,
// --log-level; read them with loadConfig and newLogger.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cosnim",
		Short: "Run and talk to Cosnim relays",
		Long: `cosnim runs relays, the small stateless servers through which Cosnim
instances exchange rosters, and talks to them.

The configuration is read from --config FILE, else $COSNIM_CONFIG, else
./cosnim.yaml, else a built-in default with one relay named "local" on
tcp://127.0.0.1:7420.

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          groupArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		SuggestionsMinimumDistance: suggestDistance,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := newLogger(cmd); err != nil {
				return usageError(err)
			}
			return nil
		},
	}
	root.Version = versionString()   // adds --version
	root.SetFlagErrorFunc(flagError) // inherited by every command
	pf := root.PersistentFlags()
	pf.String("config", "", "configuration file (default: $COSNIM_CONFIG, ./cosnim.yaml, built-in)")
	pf.String("log-format", "text", "log format: text or json")
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newStartCmd(),
		newRelayCmd(),
		newConfigCmd(),
		newSecretCmd(),
		newSimCmd(),
		newVersionCmd(),
	)
	argsAreUsage(root)
	return root
}

// newGroupCmd builds a command that only groups subs; run by itself it
// prints its help.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  groupArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		SuggestionsMinimumDistance: suggestDistance,
	}
	cmd.AddCommand(subs...)
	return cmd
}

// newRelayCmd builds `cosnim relay` and the commands that talk to a relay.
func newRelayCmd() *cobra.Command {
	return newGroupCmd("relay", "Talk to a running relay",
		newPingCmd(),
		newWatchCmd(),
		newAnnounceCmd(),
		newBenchCmd(),
		newTopCmd(),
		newHomesCmd(),
		newConformanceCmd(),
	)
}

// loadConfig loads the configuration named by --config (or the search order).
func loadConfig(cmd *cobra.Command) (*config.File, error) {
	path, err := cmd.Flags().GetString("config")
	if err != nil {
		return nil, err
	}
	return config.Load(path)
}

// newLogger builds the logger selected by --log-format and --log-level,
// writing to the command's stderr.
func newLogger(cmd *cobra.Command) (*slog.Logger, error) {
	format, err := cmd.Flags().GetString("log-format")
	if err != nil {
		return nil, err
	}
	levelName, err := cmd.Flags().GetString("log-level")
	if err != nil {
		return nil, err
	}
	var level slog.Level
	switch strings.ToLower(levelName) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", levelName)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
