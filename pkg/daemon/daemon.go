package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/buildinfo"
)

// DefaultStopTimeout bounds a graceful stop when Spec.StopTimeout is zero.
// It matches the 10 s PVE's daemons wait for their workers before killing them.
const DefaultStopTimeout = 10 * time.Second

// Service is one daemon's work. The lifecycle calls its methods like this:
//
//   - Listen once, as root, before privileges are dropped (if Spec.User is
//     set): bind sockets, read root-only files.
//   - Serve once, in a goroutine of its own, started just before readiness
//     is reported (the sockets are bound already); it runs until Shutdown (or until its ctx is cancelled, which
//     happens only when a stop exceeds its bound) and returns nil after a
//     clean stop. A non-nil return stops the daemon with exit code 1.
//   - Reload for each SIGHUP while Serve runs, never two at a time: re-read
//     configuration; an error keeps the old configuration (it is logged, the
//     process keeps running).
//   - Shutdown once on SIGTERM/SIGINT, never concurrently with Reload: stop
//     accepting and let in-flight work finish within ctx's deadline
//     (Spec.StopTimeout); past the deadline close what is left and return.
//
// If start-up fails after Listen, the process exits without calling Shutdown;
// the kernel closes the sockets.
type Service interface {
	Listen(ctx context.Context) error
	Serve(ctx context.Context) error
	Reload(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Spec describes one daemon for Command.
type Spec struct {
	// Name is the program name, e.g. "pveproxy"; it names the pid file
	// (Paths.PIDFile(Name)) and the syslog tag.
	Name string
	// Short is the one-line description shown by --help.
	Short string
	// User is the account the daemon switches to after Listen; "" stays root.
	User string
	// StopTimeout bounds a graceful stop; zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// Flags, if set, registers the service's own flags on the start and
	// restart commands (e.g. --port). Env.Flags gives the parsed set to New.
	Flags func(fs *pflag.FlagSet)
	// New builds the service after flag parsing, in the process that will
	// run it (the foreground process, never the one that daemonizes).
	New func(env Env) (Service, error)
}

// Env is what a service gets from the lifecycle.
type Env struct {
	// Log writes to stderr (journald) or, for a daemonized process, syslog.
	Log *slog.Logger
	// Debug is set by `start --debug`; Log then includes debug records.
	Debug bool
	// Paths come from --prefix, else $PVENODE_PREFIX, else the real paths.
	Paths buildinfo.Paths
	// Flags is the parsed flag set of the start (or restart) command,
	// including the flags Spec.Flags registered.
	Flags *pflag.FlagSet
}

// stopTimeout returns the effective graceful-stop bound.
func (s Spec) stopTimeout() time.Duration {
	if s.StopTimeout > 0 {
		return s.StopTimeout
	}
	return DefaultStopTimeout
}

func (s Spec) validate() error {
	if s.Name == "" {
		return errors.New("daemon spec: empty name")
	}
	if s.New == nil {
		return fmt.Errorf("daemon spec %s: no New function", s.Name)
	}
	return nil
}

// startOpts are the flags of start and restart.
type startOpts struct {
	foreground bool
	debug      bool
	readyFD    int // set only on the re-executed child of a daemonizing start
}

// cli holds the parsed persistent flags of one command tree.
type cli struct {
	spec   Spec
	prefix string
}

// paths resolves --prefix, falling back to $PVENODE_PREFIX.
func (c *cli) paths(cmd *cobra.Command) (buildinfo.Paths, error) {
	prefix := c.prefix
	if !cmd.Flags().Changed("prefix") {
		prefix = os.Getenv(buildinfo.PrefixEnv)
	}
	if prefix == "" {
		return buildinfo.PathsFor(""), nil
	}
	abs, err := filepath.Abs(prefix)
	if err != nil {
		return buildinfo.Paths{}, fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return buildinfo.PathsFor(abs), nil
}

// Command returns the root command of a daemon with the subcommands start,
// stop, restart, reload and status. Run it with Execute.
//
//   - start [--foreground] [--debug]: without --foreground the process
//     re-executes itself detached (new session, stdio on /dev/null, logging
//     to syslog) and exits 0 once the child reports ready, or 1 with the
//     child's error. --debug implies --foreground and enables debug logging.
//     systemd units use Type=notify with `start --foreground`.
//   - stop: SIGTERM to the running daemon, then wait until it has exited
//     (StopTimeout plus 5 s, then SIGKILL). Not running is not an error.
//   - restart: stop if running, then start (same flags as start). Unlike
//     PVE's restart, which re-execs the daemon in place on SIGHUP, this one
//     has a short window without a listener; use reload for the
//     no-downtime path.
//   - reload: SIGHUP to the running daemon (re-read configuration, keep the
//     sockets); an error if it is not running.
//   - status: prints "running" or "stopped", as PVE does, and exits 0 in
//     both cases; exit 1 only if the state cannot be determined.
//
// The persistent flag --prefix re-roots all paths (default $PVENODE_PREFIX).
func Command(spec Spec) *cobra.Command {
	c := &cli{spec: spec}
	root := &cobra.Command{
		Use:           spec.Name,
		Short:         spec.Short,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.PersistentFlags().StringVar(&c.prefix, "prefix", "",
		"re-root all paths under `dir` (default $"+buildinfo.PrefixEnv+")")

	var so startOpts
	start := &cobra.Command{
		Use:   "start",
		Short: "start the daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.start(cmd.Context(), cmd, so)
		},
	}
	addStartFlags(start.Flags(), &so, spec)
	start.Flags().IntVar(&so.readyFD, readyFDFlag, 0, "internal: report readiness on this file descriptor")
	_ = start.Flags().MarkHidden(readyFDFlag)

	var ro startOpts
	restart := &cobra.Command{
		Use:   "restart",
		Short: "stop the daemon if it is running, then start it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.restart(cmd.Context(), cmd, ro)
		},
	}
	addStartFlags(restart.Flags(), &ro, spec)

	stop := &cobra.Command{
		Use:   "stop",
		Short: "stop the daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.stop(cmd.Context(), cmd)
		},
	}
	reload := &cobra.Command{
		Use:   "reload",
		Short: "make the running daemon re-read its configuration (SIGHUP)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.reload(cmd)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: `print "running" or "stopped"`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.status(cmd)
		},
	}
	root.AddCommand(start, stop, restart, reload, status)
	return root
}

func addStartFlags(fs *pflag.FlagSet, o *startOpts, spec Spec) {
	fs.BoolVarP(&o.foreground, "foreground", "f", false, "do not daemonize")
	fs.BoolVar(&o.debug, "debug", false, "debug logging; implies --foreground")
	if spec.Flags != nil {
		spec.Flags(fs)
	}
}

// exitError carries an exit code other than 1 (or an error already reported).
type exitError struct {
	code int
	err  error // nil: nothing more to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// Execute runs cmd (normally from Command) with os.Args and returns the
// process exit code; errors are printed to stderr. Only main calls os.Exit.
func Execute(cmd *cobra.Command) int {
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.Name(), err)
	return code
}

// PathsOf resolves the paths for an extra subcommand added to the tree that
// Command returns, from its inherited --prefix flag or $PVENODE_PREFIX.
func PathsOf(cmd *cobra.Command) (buildinfo.Paths, error) {
	prefix, _ := cmd.Flags().GetString("prefix")
	c := &cli{prefix: prefix}
	return c.paths(cmd)
}
