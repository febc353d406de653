package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/daemon"
)

// The tests run this test binary as a real daemon: with childEnv set,
// TestMain runs testSpec through Command/Execute instead of the tests.
const (
	childEnv       = "DAEMONTEST_CHILD"
	userEnv        = "DAEMONTEST_USER"
	stopTimeoutEnv = "DAEMONTEST_STOP_TIMEOUT"
	failListenEnv  = "DAEMONTEST_FAIL_LISTEN"
	daemonName     = "testd"
	// waitLimit guards every wait so a broken daemon fails the test instead
	// of hanging it; it is not a performance bound.
	waitLimit = 10 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(daemon.Execute(daemon.Command(testSpec())))
	}
	os.Exit(m.Run())
}

// testSpec describes the test daemon; the environment picks its variant.
func testSpec() daemon.Spec {
	stop := 3 * time.Second
	if v := os.Getenv(stopTimeoutEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(err)
		}
		stop = d
	}
	return daemon.Spec{
		Name:        daemonName,
		Short:       "lifecycle test daemon",
		User:        os.Getenv(userEnv),
		StopTimeout: stop,
		Flags: func(fs *pflag.FlagSet) {
			fs.String("port-file", "", "write the listening port to `file`")
		},
		New: func(env daemon.Env) (daemon.Service, error) {
			pf, err := env.Flags.GetString("port-file")
			if err != nil {
				return nil, err
			}
			if pf == "" {
				return nil, errors.New("--port-file is required")
			}
			return &testService{env: env, portFile: pf, failListen: os.Getenv(failListenEnv) == "1"}, nil
		},
	}
}

// testService serves a few HTTP endpoints on 127.0.0.1:0.
type testService struct {
	env        daemon.Env
	portFile   string
	failListen bool
	ln         net.Listener
	srv        *http.Server
	reloads    atomic.Int64
}

var _ daemon.Service = (*testService)(nil)

func (s *testService) Listen(ctx context.Context) error {
	if s.failListen {
		return errors.New("test listen failure: address in use")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(s.portFile, []byte(strconv.Itoa(port)), 0o644); err != nil {
		ln.Close()
		return err
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ids", func(w http.ResponseWriter, r *http.Request) {
		data, err := os.ReadFile("/proc/self/status")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") || strings.HasPrefix(l, "Groups:") {
				fmt.Fprintln(w, l)
			}
		}
	})
	mux.HandleFunc("GET /reloads", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, s.reloads.Load())
	})
	// /slow and /hang answer "start" at once, then "done" after a while.
	slow := func(d time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "start")
			w.(http.Flusher).Flush()
			time.Sleep(d)
			fmt.Fprintln(w, "done")
		}
	}
	mux.HandleFunc("GET /slow", slow(time.Second))
	mux.HandleFunc("GET /hang", slow(time.Minute))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return nil
}

func (s *testService) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.srv.Close() })
	defer stop()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *testService) Reload(ctx context.Context) error {
	s.env.Log.Info("test reload")
	s.reloads.Add(1)
	return nil
}

func (s *testService) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return err
	}
	return nil
}

// harness runs the test daemon's commands under a private prefix.
type harness struct {
	t        *testing.T
	dir      string
	paths    buildinfo.Paths
	portFile string
	env      []string
}

func newHarness(t *testing.T, env ...string) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("daemon lifecycle tests need root (pid dir ownership, privilege drop); CI runs as root")
	}
	dir := t.TempDir()
	// A daemon that dropped to www-data must reach its pid directory.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, dir: dir, paths: buildinfo.PathsFor(dir), portFile: filepath.Join(dir, "port")}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "JOURNAL_STREAM", "GORACE", buildinfo.PrefixEnv, userEnv, stopTimeoutEnv, failListenEnv:
			continue
		}
		h.env = append(h.env, kv)
	}
	// Under -race every child would otherwise sleep 1 s at exit.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	h.env = append(h.env, childEnv+"=1", "GORACE="+gorace)
	h.env = append(h.env, env...)
	t.Cleanup(func() {
		// Kill a daemon a failed test left behind, if it is really ours.
		pid := h.pidFromFile()
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid > 1 && bytes.Contains(cmdline, []byte(h.dir)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return h
}

func (h *harness) command(args ...string) *exec.Cmd {
	args = append(args, "--prefix", h.dir)
	if args[0] == "start" || args[0] == "restart" {
		args = append(args, "--port-file", h.portFile)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = h.env
	return cmd
}

// run runs one command to completion.
func (h *harness) run(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	cmd := h.command(args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	guard := time.AfterFunc(waitLimit+5*time.Second, func() { _ = cmd.Process.Kill() })
	defer guard.Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		h.t.Fatalf("%v: %v", args, err)
	}
	return so.String(), se.String(), cmd.ProcessState.ExitCode()
}

// mustRun runs a command that must exit 0.
func (h *harness) mustRun(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("%v: exit code %d; want 0; stderr: %s", args, code, errOut)
	}
	return out
}

func (h *harness) pidFile() string { return h.paths.PIDFile(daemonName) }

func (h *harness) pidFromFile() int {
	data, err := os.ReadFile(h.pidFile())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func (h *harness) url(path string) string {
	h.t.Helper()
	data, err := os.ReadFile(h.portFile)
	if err != nil {
		h.t.Fatal(err)
	}
	return "http://127.0.0.1:" + string(data) + path
}

func (h *harness) get(path string) string {
	h.t.Helper()
	resp, err := http.Get(h.url(path))
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET %s: %s %q %v", path, resp.Status, body, err)
	}
	return string(body)
}

// begin sends a GET to /slow or /hang and returns once the handler runs;
// finish reads the rest of the body.
func (h *harness) begin(path string) (finish func() (string, error)) {
	h.t.Helper()
	resp, err := http.Get(h.url(path))
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "start\n" {
		h.t.Fatalf("GET %s: first line %q, %v; want start", path, line, err)
	}
	return func() (string, error) {
		defer resp.Body.Close()
		rest, err := io.ReadAll(br)
		return string(rest), err
	}
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test reads.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fgDaemon is a `start --foreground` process with a notify socket.
type fgDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	notes  chan string   // sd_notify datagrams
	done   chan struct{} // closed when the process has exited
}

// startForeground starts the daemon in the foreground and waits for READY=1.
func (h *harness) startForeground() *fgDaemon {
	h.t.Helper()
	sock := filepath.Join(h.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		h.t.Fatal(err)
	}
	d := &fgDaemon{t: h.t, stderr: &syncBuffer{}, notes: make(chan string, 64), done: make(chan struct{})}
	readerDone := make(chan struct{})
	go func() { // ends when conn is closed in Cleanup
		defer close(readerDone)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			d.notes <- string(buf[:n])
		}
	}()
	d.cmd = h.command("start", "--foreground")
	d.cmd.Env = append(d.cmd.Env, "NOTIFY_SOCKET="+sock)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { // ends when the process exits; Cleanup kills it if needed
		_ = d.cmd.Wait()
		close(d.done)
	}()
	h.t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		conn.Close()
		<-readerDone
	})
	d.expectNote("READY=1")
	return d
}

// expectNote waits for a notify message containing want and returns it.
func (d *fgDaemon) expectNote(want string) string {
	d.t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case n := <-d.notes:
			if strings.Contains(n, want) {
				return n
			}
		case <-d.done:
			d.t.Fatalf("daemon exited while waiting for %q; stderr:\n%s", want, d.stderr)
		case <-timeout:
			d.t.Fatalf("no notify message %q; stderr:\n%s", want, d.stderr)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (d *fgDaemon) wait() int {
	d.t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(waitLimit):
		d.t.Fatalf("daemon did not exit; stderr:\n%s", d.stderr)
		return -1
	}
}

func (d *fgDaemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// procStat returns the fields of /proc/<pid>/stat after the command name,
// or nil if the process is gone.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	return strings.Fields(string(data[i+1:]))
}

// waitGone waits until pid has exited (gone or a zombie nobody reaps).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		f := procStat(pid)
		if f == nil || f[0] == "Z" || f[0] == "X" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pid %d still running", pid)
}

func TestBackgroundLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	if out := h.mustRun("status"); out != "stopped\n" {
		t.Errorf("status before start = %q; want stopped", out)
	}
	h.mustRun("start")
	// start returned only after readiness: the socket answers at once.
	if got := h.get("/reloads"); got != "0" {
		t.Errorf("GET /reloads = %q; want 0", got)
	}
	if out := h.mustRun("status"); out != "running\n" {
		t.Errorf("status = %q; want running", out)
	}
	pid := h.pidFromFile()
	stat := procStat(pid)
	if stat == nil {
		t.Fatalf("pid file names %d, which is not running", pid)
	}
	if got := stat[3]; got != strconv.Itoa(pid) { // field 6 of stat: session id
		t.Errorf("daemon session = %s; want its own (%d)", got, pid)
	}
	if fi, err := os.Stat(filepath.Dir(h.pidFile())); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("pid dir: %v %v; want mode 0755", fi.Mode(), err)
	}

	for _, args := range [][]string{{"start"}, {"start", "--foreground"}} {
		_, errOut, code := h.run(args...)
		want := fmt.Sprintf("daemon already running (pid %d)", pid)
		if code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("second %v: exit %d, stderr %q; want failure with %q", args, code, errOut, want)
		}
	}

	h.mustRun("restart")
	newPID := h.pidFromFile()
	if newPID == pid || newPID == 0 {
		t.Errorf("pid after restart = %d; want a new one (old %d)", newPID, pid)
	}
	waitGone(t, pid)
	if got := h.get("/reloads"); got != "0" {
		t.Errorf("GET /reloads after restart = %q; want 0", got)
	}

	h.mustRun("stop")
	waitGone(t, newPID)
	if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after stop: %v; want removed", err)
	}
	if out := h.mustRun("status"); out != "stopped\n" {
		t.Errorf("status after stop = %q; want stopped", out)
	}
	if _, errOut, code := h.run("stop"); code != 0 || !strings.Contains(errOut, "not running") {
		t.Errorf("stop when stopped: exit %d, stderr %q; want 0 and 'not running'", code, errOut)
	}
	if _, errOut, code := h.run("reload"); code == 0 || !strings.Contains(errOut, "daemon not running") {
		t.Errorf("reload when stopped: exit %d, stderr %q; want failure 'daemon not running'", code, errOut)
	}
}

func TestStaleFileIsNotRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if err := os.MkdirAll(filepath.Dir(h.pidFile()), 0o755); err != nil {
		t.Fatal(err)
	}
	// pid 1 exists but holds no lock: a crashed daemon's leftover file.
	if err := os.WriteFile(h.pidFile(), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := h.mustRun("status"); out != "stopped\n" {
		t.Errorf("status with stale pid file = %q; want stopped", out)
	}
	h.mustRun("start")
	if pid := h.pidFromFile(); pid <= 1 {
		t.Errorf("pid file after start = %d; want the daemon's pid", pid)
	}
	h.mustRun("stop")
}

func TestPrivilegeDrop(t *testing.T) {
	t.Parallel()
	u, err := user.Lookup(buildinfo.ServiceUser)
	if err != nil {
		t.Skipf("no %s user on this host: %v", buildinfo.ServiceUser, err)
	}
	h := newHarness(t, userEnv+"="+buildinfo.ServiceUser)
	h.mustRun("start")
	pid := h.pidFromFile()

	wantUID := strings.Repeat(u.Uid+"\t", 3) + u.Uid
	wantGID := strings.Repeat(u.Gid+"\t", 3) + u.Gid
	check := func(where, status string) {
		t.Helper()
		fields := map[string]string{}
		for _, l := range strings.Split(status, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		if fields["Uid"] != wantUID || fields["Gid"] != wantGID {
			t.Errorf("%s: Uid %q Gid %q; want %q and %q", where, fields["Uid"], fields["Gid"], wantUID, wantGID)
		}
		if strings.Contains(" "+fields["Groups"]+" ", " 0 ") {
			t.Errorf("%s: Groups %q still include root", where, fields["Groups"])
		}
	}
	check("served /proc/self/status", h.get("/ids"))
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		check(p, string(data))
	}
	for _, p := range []string{filepath.Dir(h.pidFile()), h.pidFile()} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); got != u.Uid {
			t.Errorf("%s owner = %s; want %s", p, got, u.Uid)
		}
	}

	h.mustRun("stop")
	waitGone(t, pid)
	if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after stop: %v; want removed by the unprivileged daemon", err)
	}
}

func TestReloadDuringRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	d := h.startForeground()
	port, err := os.ReadFile(h.portFile)
	if err != nil {
		t.Fatal(err)
	}

	finish := h.begin("/slow")
	h.mustRun("reload")
	if n := d.expectNote("RELOADING=1"); !strings.Contains(n, "MONOTONIC_USEC=") {
		t.Errorf("reload notification %q lacks MONOTONIC_USEC", n)
	}
	d.expectNote("READY=1") // Reload has returned
	if got := h.get("/reloads"); got != "1" {
		t.Errorf("GET /reloads after reload = %q; want 1", got)
	}
	if again, _ := os.ReadFile(h.portFile); string(again) != string(port) {
		t.Errorf("port after reload = %s; want unchanged %s", again, port)
	}
	if rest, err := finish(); err != nil || rest != "done\n" {
		t.Errorf("in-flight request across reload: %q, %v; want done", rest, err)
	}

	d.signal(syscall.SIGHUP) // the systemd ExecReload path
	d.expectNote("READY=1")
	if got := h.get("/reloads"); got != "2" {
		t.Errorf("GET /reloads after SIGHUP = %q; want 2", got)
	}

	d.signal(syscall.SIGTERM)
	d.expectNote("STOPPING=1")
	if code := d.wait(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d; want 0; stderr:\n%s", code, d.stderr)
	}
	if out := d.stderr.String(); !strings.Contains(out, `msg="test reload"`) || !strings.Contains(out, "time=") {
		t.Errorf("log %q: want the service's records, with time= outside journald", out)
	}
}

func TestStopWaitsForRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("start")
	pid := h.pidFromFile()

	finish := h.begin("/slow")
	h.mustRun("stop") // returns once the daemon has exited
	if rest, err := finish(); err != nil || rest != "done\n" {
		t.Errorf("in-flight request across stop: %q, %v; want done", rest, err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after stop: %v; want removed", err)
	}
}

func TestStopBoundClosesHangingRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, stopTimeoutEnv+"=300ms")
	d := h.startForeground()
	finish := h.begin("/hang") // would take a minute

	d.signal(syscall.SIGTERM)
	if code := d.wait(); code != 0 {
		t.Errorf("exit code = %d; want 0; stderr:\n%s", code, d.stderr)
	}
	if rest, err := finish(); err == nil {
		t.Errorf("hanging request got %q, nil; want it cut off", rest)
	}
	if out := d.stderr.String(); !strings.Contains(out, "exceeded its bound") {
		t.Errorf("log %q: want the forced close reported", out)
	}
	if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after stop: %v; want removed", err)
	}
}

func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, stopTimeoutEnv+"=1m")
	d := h.startForeground()
	h.begin("/hang")

	d.signal(syscall.SIGTERM)
	d.expectNote("STOPPING=1")
	d.signal(syscall.SIGINT)
	if code := d.wait(); code != 1 {
		t.Errorf("exit code = %d; want 1; stderr:\n%s", code, d.stderr)
	}
	if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after forced exit: %v; want removed", err)
	}
}

func TestListenFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"foreground", []string{"start", "--foreground"}},
		{"background", []string{"start"}},
		{"debug", []string{"start", "--debug"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, failListenEnv+"=1")
			_, errOut, code := h.run(tt.args...)
			const want = "testd: listen: test listen failure: address in use"
			if code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tt.args, code, errOut, want)
			}
			if _, err := os.Stat(h.pidFile()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pid file after failed start: %v; want removed", err)
			}
			if out := h.mustRun("status"); out != "stopped\n" {
				t.Errorf("status = %q; want stopped", out)
			}
		})
	}
}
