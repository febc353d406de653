package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

const (
	// readyFDFlag is the hidden start flag that names the pipe a daemonizing
	// parent waits on.
	readyFDFlag = "ready-fd"
	// readyMsg and errorPrefix are what the child writes to that pipe.
	readyMsg    = "READY"
	errorPrefix = "ERROR "
	// startTimeout bounds the wait for a daemonized child (systemd's default
	// start timeout); the child is killed when it passes.
	startTimeout = 90 * time.Second
	// stopGrace is added to Spec.StopTimeout before `stop` resorts to SIGKILL;
	// killWait is how long it then waits for the exit.
	stopGrace = 5 * time.Second
	killWait  = 5 * time.Second
	pollEvery = 20 * time.Millisecond
)

// errNotRunning is returned by reload when no daemon holds the pid file.
var errNotRunning = errors.New("daemon not running")

// start runs the daemon in the foreground or daemonizes.
func (c *cli) start(ctx context.Context, cmd *cobra.Command, o startOpts) error {
	if err := c.spec.validate(); err != nil {
		return err
	}
	if o.foreground || o.debug || o.readyFD > 0 {
		return c.runForeground(ctx, cmd, o)
	}
	return c.daemonize(cmd)
}

// daemonize re-executes this program as `start --foreground` in a new
// session with stdio on /dev/null and waits until it reports ready or fails.
func (c *cli) daemonize(cmd *cobra.Command) error {
	paths, err := c.paths(cmd)
	if err != nil {
		return err
	}
	pid, err := runningPID(paths.PIDFile(c.spec.Name))
	if err != nil {
		return err
	}
	if pid > 0 {
		return &alreadyRunningError{pid: pid}
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	defer rd.Close()
	child := exec.Command("/proc/self/exe", childArgs(cmd.Flags())...)
	child.Args[0] = os.Args[0]
	child.ExtraFiles = []*os.File{wr} // fd 3 in the child
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = child.Start()
	wr.Close()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	msg, err := readReady(rd, startTimeout)
	switch {
	case err != nil:
		_ = child.Process.Kill()
		_ = child.Wait()
		return fmt.Errorf("daemon start-up: %w; process killed", err)
	case msg == readyMsg:
		return child.Process.Release()
	case strings.HasPrefix(msg, errorPrefix):
		_ = child.Wait()
		return errors.New(strings.TrimPrefix(msg, errorPrefix))
	default:
		werr := child.Wait()
		if werr == nil {
			werr = errors.New("exit status 0")
		}
		return fmt.Errorf("daemon exited during start-up: %w", werr)
	}
}

// childArgs rebuilds the start command line for the daemonized child from
// the flags set on the command line (root and service flags included).
func childArgs(fs *pflag.FlagSet) []string {
	args := []string{"start", "--foreground", fmt.Sprintf("--%s=3", readyFDFlag)}
	fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "foreground", "debug", readyFDFlag:
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return args
}

// readReady reads the child's report until it closes the pipe.
func readReady(rd *os.File, timeout time.Duration) (string, error) {
	if err := rd.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	data, err := io.ReadAll(rd)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", fmt.Errorf("not ready after %v", timeout)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// readyPipe is the write end a daemonized child reports readiness on.
type readyPipe struct {
	f *os.File // nil once reported
}

// openReadyPipe returns the pipe for fd, or nil if fd is not set.
func openReadyPipe(fd int) *readyPipe {
	if fd <= 0 {
		return nil
	}
	unix.CloseOnExec(fd) // processes the service starts must not hold it open
	return &readyPipe{f: os.NewFile(uintptr(fd), "ready-pipe")}
}

// report sends READY (err == nil) or the error text, once, and closes the
// pipe. It is a no-op on a nil pipe.
func (p *readyPipe) report(err error) {
	if p == nil || p.f == nil {
		return
	}
	msg := readyMsg
	if err != nil {
		msg = errorPrefix + err.Error()
	}
	_, _ = p.f.WriteString(msg)
	p.f.Close()
	p.f = nil
}

// restart stops a running daemon, then starts it.
func (c *cli) restart(ctx context.Context, cmd *cobra.Command, o startOpts) error {
	if err := c.spec.validate(); err != nil {
		return err
	}
	if _, err := c.stopDaemon(ctx, cmd); err != nil {
		return err
	}
	return c.start(ctx, cmd, o)
}

// stop stops a running daemon; not running is reported but no error.
func (c *cli) stop(ctx context.Context, cmd *cobra.Command) error {
	if err := c.spec.validate(); err != nil {
		return err
	}
	was, err := c.stopDaemon(ctx, cmd)
	if err != nil {
		return err
	}
	if !was {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: not running\n", c.spec.Name)
	}
	return nil
}

// stopDaemon sends SIGTERM and waits for the lock to go away, escalating to
// SIGKILL after the stop bound plus stopGrace.
func (c *cli) stopDaemon(ctx context.Context, cmd *cobra.Command) (bool, error) {
	paths, err := c.paths(cmd)
	if err != nil {
		return false, err
	}
	path := paths.PIDFile(c.spec.Name)
	pid, err := runningPID(path)
	if err != nil || pid == 0 {
		return false, err
	}
	if err := signalPID(pid, unix.SIGTERM); err != nil {
		return true, err
	}
	if ok, err := waitStopped(ctx, path, pid, c.spec.stopTimeout()+stopGrace); ok || err != nil {
		return true, err
	}
	if err := signalPID(pid, unix.SIGKILL); err != nil {
		return true, err
	}
	if ok, err := waitStopped(ctx, path, pid, killWait); ok || err != nil {
		return true, err
	}
	return true, fmt.Errorf("daemon (pid %d) did not stop", pid)
}

// waitStopped polls until pid no longer holds the pid file lock, for at most d.
func waitStopped(ctx context.Context, path string, pid int, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		cur, err := runningPID(path)
		if err != nil {
			return false, err
		}
		if cur != pid {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// reload sends SIGHUP to the running daemon.
func (c *cli) reload(cmd *cobra.Command) error {
	pid, err := c.runningPID(cmd)
	if err != nil {
		return err
	}
	if pid == 0 {
		return errNotRunning
	}
	return signalPID(pid, unix.SIGHUP)
}

// runningPID validates the spec, resolves the paths and returns the pid of
// the running daemon, or 0.
func (c *cli) runningPID(cmd *cobra.Command) (int, error) {
	if err := c.spec.validate(); err != nil {
		return 0, err
	}
	paths, err := c.paths(cmd)
	if err != nil {
		return 0, err
	}
	return runningPID(paths.PIDFile(c.spec.Name))
}

// status prints "running" or "stopped".
func (c *cli) status(cmd *cobra.Command) error {
	pid, err := c.runningPID(cmd)
	if err != nil {
		return err
	}
	state := "stopped"
	if pid > 0 {
		state = "running"
	}
	fmt.Fprintln(cmd.OutOrStdout(), state)
	return nil
}
