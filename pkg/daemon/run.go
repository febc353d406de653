package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// hardStopGrace is how long Serve may take to return after its context was
// cancelled at the end of the stop bound before the process exits anyway.
const hardStopGrace = time.Second

// runForeground runs the daemon in this process until it is stopped.
func (c *cli) runForeground(ctx context.Context, cmd *cobra.Command, o startOpts) error {
	ready := openReadyPipe(o.readyFD)
	paths, err := c.paths(cmd)
	if err != nil {
		ready.report(err)
		return err
	}
	log, closeLog := daemonLogger(c.spec.Name, cmd.ErrOrStderr(), ready != nil, o.debug)
	defer closeLog()
	tuneGC()
	procs, why := tuneProcs()
	log.Info("runtime", "GOMAXPROCS", procs, "reason", why)
	r := &runner{
		spec:  c.spec,
		log:   log,
		ready: ready,
		env:   Env{Log: log, Debug: o.debug, Paths: paths, Flags: cmd.Flags()},
	}
	err = r.run(ctx)
	if err != nil && ready != nil {
		log.Error("daemon failed", "err", err) // stderr is /dev/null
	}
	return err
}

// runner is the foreground lifecycle of one daemon process.
type runner struct {
	spec  Spec
	env   Env
	log   *slog.Logger
	ready *readyPipe // nil unless started by a daemonizing parent
}

// notify sends state to systemd if NOTIFY_SOCKET is set.
func (r *runner) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		r.log.Debug("sd_notify failed", "err", err)
	}
}

// startup takes the pid file, builds the service, lets it bind and drops
// privileges. The returned pid file, if non-nil, must be released.
func (r *runner) startup(ctx context.Context) (Service, *pidFile, error) {
	var acct *account
	if r.spec.User != "" {
		a, err := lookupAccount(r.spec.User)
		if err != nil {
			return nil, nil, err
		}
		acct = a
	}
	pf, err := lockPIDFile(r.env.Paths.PIDFile(r.spec.Name), acct)
	if err != nil {
		return nil, nil, err
	}
	svc, err := r.spec.New(r.env)
	if err != nil {
		return nil, pf, fmt.Errorf("set up %s: %w", r.spec.Name, err)
	}
	if err := svc.Listen(ctx); err != nil {
		return nil, pf, fmt.Errorf("listen: %w", err)
	}
	if acct != nil {
		if err := dropPrivileges(acct); err != nil {
			return nil, pf, err
		}
	}
	return svc, pf, nil
}

// run is the whole life of the foreground process.
func (r *runner) run(ctx context.Context) error {
	// Registered before start-up so an early SIGHUP cannot kill the process.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)

	svc, pf, err := r.startup(ctx)
	if pf != nil {
		defer pf.release(r.log)
	}
	if err != nil {
		r.ready.report(err)
		return err
	}

	serveCtx, cancelServe := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelServe()
	serveDone := make(chan error, 1)
	go func() { serveDone <- svc.Serve(serveCtx) }()

	r.notify(fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid()))
	r.ready.report(nil)
	r.log.Info("started", "pid", os.Getpid(), "uid", os.Getuid())

	rl := &reloader{r: r, svc: svc}
	for {
		select {
		case sig := <-sigs:
			if sig == unix.SIGHUP {
				rl.request(ctx)
				continue
			}
			return r.stop(svc, sig, sigs, rl, serveDone, cancelServe)
		case err := <-rl.done:
			rl.finished(ctx, err)
		case err := <-serveDone:
			rl.cancel()
			if err != nil {
				r.notify(sd.SdNotifyStopping)
				r.log.Error("service failed", "err", err)
				return fmt.Errorf("serve: %w", err)
			}
			r.log.Info("service ended")
			return nil
		}
	}
}

// reloader runs Reload in a goroutine owned by the run loop, one at a time;
// a SIGHUP arriving during a reload schedules one more. Only the run loop
// goroutine uses it, so it needs no lock.
type reloader struct {
	r      *runner
	svc    Service
	done   chan error         // non-nil while a Reload runs; receives its result
	stopFn context.CancelFunc // cancels the running Reload
	again  bool               // another SIGHUP came in during the running Reload
}

func (l *reloader) request(ctx context.Context) {
	if l.done != nil {
		l.again = true
		return
	}
	l.r.log.Info("reloading")
	l.r.notify(sd.SdNotifyReloading + "\n" + sd.SdNotifyMonotonicUsec())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	l.done, l.stopFn = done, cancel
	go func() { done <- l.svc.Reload(rctx) }()
}

func (l *reloader) finished(ctx context.Context, err error) {
	l.stopFn()
	l.done, l.stopFn = nil, nil
	if err != nil {
		l.r.log.Error("reload failed; keeping the old configuration", "err", err)
	} else {
		l.r.log.Info("reloaded")
	}
	l.r.notify(sd.SdNotifyReady)
	if l.again {
		l.again = false
		l.request(ctx)
	}
}

// cancel cancels a running Reload without waiting for it.
func (l *reloader) cancel() {
	if l.stopFn != nil {
		l.stopFn()
	}
}

// stop shuts the service down within the stop bound. A second SIGTERM or
// SIGINT makes it return at once with exit code 1. On that path, and when
// Serve ignores the hard stop, the service goroutines are abandoned: the
// process exits right after stop returns.
func (r *runner) stop(svc Service, sig os.Signal, sigs <-chan os.Signal, rl *reloader,
	serveDone <-chan error, cancelServe context.CancelFunc) error {
	r.notify(sd.SdNotifyStopping)
	timeout := r.spec.stopTimeout()
	r.log.Info("stopping", "signal", sig.String(), "timeout", timeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	forced := func(s os.Signal) error {
		r.log.Warn("second signal while stopping; exiting now", "signal", s.String())
		return &exitError{code: 1}
	}

	if rl.done != nil { // let a running Reload end first; Shutdown never overlaps it
		rl.cancel()
	wait:
		for {
			select {
			case <-rl.done:
				break wait
			case <-stopCtx.Done():
				r.log.Warn("reload still running at the end of the stop bound")
				break wait
			case s := <-sigs:
				if s != unix.SIGHUP {
					return forced(s)
				}
			}
		}
	}

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- svc.Shutdown(stopCtx) }()

	var serveErr, shutErr error
	served, shut := false, false
	for !served || !shut {
		select {
		case shutErr = <-shutdownDone:
			shut = true
			shutdownDone = nil
		case serveErr = <-serveDone:
			served = true
			serveDone = nil
		case s := <-sigs:
			if s == unix.SIGHUP {
				r.log.Info("reload ignored while stopping")
				continue
			}
			return forced(s)
		case <-stopCtx.Done():
			r.log.Warn("graceful stop exceeded its bound; closing what is left", "timeout", timeout)
			cancelServe()
			if !served {
				select {
				case serveErr = <-serveDone:
				case <-time.After(hardStopGrace):
					r.log.Error("service did not stop; exiting anyway")
					return &exitError{code: 1}
				case s := <-sigs:
					return forced(s)
				}
			}
			served, shut = true, true
		}
	}
	if shutErr != nil {
		r.log.Warn("graceful stop incomplete", "err", shutErr)
	}
	if serveErr != nil {
		r.log.Error("service failed while stopping", "err", serveErr)
		return fmt.Errorf("serve: %w", serveErr)
	}
	r.log.Info("stopped")
	return nil
}

// defaultGCPercent is the garbage collector target of the daemons unless
// GOGC is set: their live heap is small (a few MB), so Go's default of 100
// collects very often under load; 200 trades a few MB of memory for less
// CPU per request (docs/benchmarks.md).
const defaultGCPercent = 200

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// tuneProcs limits the daemon to half the CPUs Go would use (all of the
// node's, or its cgroup's quota), at least one, unless GOMAXPROCS is set.
// A hypervisor's CPUs belong to its guests: PVE bounds its management
// daemons the same way (three single-threaded workers each). On this
// project's 2-vCPU reference machine one P also answers faster than two
// under load, because a second P's idle spinning and cross-CPU wake-ups
// cost more than they give (docs/benchmarks.md). It returns the value in
// force and where it came from.
func tuneProcs() (int, string) {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0), "GOMAXPROCS environment"
	}
	n := procsFor(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(n)
	return n, "half the available CPUs"
}

// procsFor is the default GOMAXPROCS for a machine where Go would use
// avail CPUs.
func procsFor(avail int) int {
	return max(1, avail/2)
}
