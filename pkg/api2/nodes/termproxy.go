package nodes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// The node shell (pve-manager's termproxy and vncwebsocket of
// PVE/API2/Nodes.pm, with the termproxy program run in-process):
//
//  1. POST /nodes/{node}/termproxy (pvedaemon) listens on 127.0.0.1 on the
//     first free port from 5900 and starts a vncshell task; it answers the
//     port, the task's UPID and a VNC ticket over the caller,
//     /nodes/{node} and the port.
//  2. GET /nodes/{node}/vncwebsocket (pveproxy) checks that ticket against
//     the caller and the port, and the framework upgrades the call to a
//     WebSocket relayed to the port (api.WebSocket).
//  3. The task takes one connection within 10 s and speaks termproxy's
//     protocol on it: the client's first line is "<user>:<ticket>\n",
//     which must be a VNC ticket of that user for /nodes/{node} and the
//     port, the user holding Sys.Console there (termproxy asks pvedaemon's
//     /access/ticket; here the check runs in-process). The task answers
//     "OK" and starts the shell on a PTY; from then on the client sends
//     "0:<len>:<len bytes>" (input), "1:<cols>:<rows>:" (resize) or "2"
//     (ping), and the PTY's output goes back as raw bytes. Either side's
//     end ends the other (the shell's process group is hung up, then
//     killed) and the task.

// Node shell constants, PVE's values.
const (
	termAcceptTimeout = 10 * time.Second // the client's connection
	termTicketTimeout = 10 * time.Second // its ticket line
	// termLineMax bounds the ticket line (termproxy's buffer).
	termLineMax = 4096
	// termBuffer is the buffer of each direction of the relay: a slow
	// side slows the other down.
	termBuffer = 64 << 10
	// termNumberMax is the longest number of a message termproxy reads.
	termNumberMax = 20
	// termKillGrace is how long the shell has to end after its hangup
	// before its process group is killed.
	termKillGrace = 3 * time.Second
	// termCols and termRows are the PTY's size until the first resize.
	termCols, termRows = 80, 20
)

// VNCTickets signs and checks the shell's VNC tickets (the
// access.Authenticator: pvedaemon signs, pveproxy checks).
type VNCTickets interface {
	AssembleVNCTicket(ctx context.Context, user, path string, port int) (string, error)
	VerifyVNCTicket(ticket, user, path string, port int) error
}

// shellCommands are PVE's commands of root@pam's shell by the cmd
// parameter; nil: a program this build does not ship (501).
var shellCommands = map[string][]string{
	"login":        {"/bin/login", "-f", "root"},
	"upgrade":      nil, // pveupgrade --shell
	"ceph_install": nil, // pveceph install
}

// termMethods declares termproxy and the node's vncwebsocket.
func (d Deps) termMethods() []api.Method {
	node := func() *api.Schema { return api.Str().Fmt("pve-node").TT("<string>") }
	return []api.Method{
		{
			Name: "termproxy", Path: "/nodes/{node}/termproxy", HTTP: "POST",
			Description: "Creates a VNC Shell proxy.",
			Protected:   true,
			RunOnNode:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/nodes/{node}", []any{"Sys.Console"}}},
			Params: map[string]*api.Schema{
				"cmd":      api.Str().Enums("ceph_install", "login", "upgrade").Def("login").Opt(),
				"cmd-opts": api.Str().Def("").Opt().Req("cmd").TT("<string>"),
				"node":     node(),
			},
			Returns: (&api.Schema{Properties: map[string]*api.Schema{
				"port":   api.Int(),
				"ticket": api.Str(),
				"upid":   api.Str(),
				"user":   api.Str(),
			}}).Additional(false),
			Handle: d.termproxy,
		},
		{
			Name: "vncwebsocket", Path: "/nodes/{node}/vncwebsocket", HTTP: "GET",
			Description: "Opens a websocket for VNC traffic.",
			RunOnNode:   true,
			Permissions: api.Permissions{
				Description: "You also need to pass a valid ticket (vncticket).",
				Check:       []any{"perm", "/nodes/{node}", []any{"Sys.Console"}},
			},
			Params: map[string]*api.Schema{
				"node":      node(),
				"port":      api.Int().Range(5900, 5999).TT("<integer> (5900 - 5999)"),
				"vncticket": api.Str().MaxLen(512).TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"port": api.Str(),
			}),
			WebSocket: true,
			Handle:    d.vncwebsocket,
		},
	}
}

// shellNode returns the node parameter if it is this node. The shell
// methods are declared RunOnNode, so pveproxy sends calls for another
// node there (PVE tunnels them over SSH); one arriving here was called on
// a daemon that does not forward (pvedaemon directly).
func shellNode(r *api.Request) (string, error) {
	n := r.Params.Get("node")
	if n != "localhost" && n != r.NodeName {
		return "", api.Errorf(http.StatusInternalServerError, "shell of node '%s': call it through pveproxy", n)
	}
	return n, nil
}

// shellCommand is PVE's get_shell_command without SSH tunnelling:
// root@pam gets the command cmd names (login: "login -f root"), every
// other user "login", whatever cmd says (PVE has no superuser role).
func (d Deps) shellCommand(user, cmd string) ([]string, error) {
	if d.Shell != nil {
		return d.Shell, nil
	}
	if user != api.RootUser {
		return []string{"/bin/login"}, nil
	}
	if cmd == "" {
		cmd = "login"
	}
	argv := shellCommands[cmd]
	if argv == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: shell command '%s'", cmd)
	}
	return argv, nil
}

// termproxy is POST /nodes/{node}/termproxy.
func (d Deps) termproxy(ctx context.Context, r *api.Request) (any, error) {
	if d.Tasks == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: tasks in this daemon")
	}
	if d.VNC == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: VNC tickets in this daemon")
	}
	node, err := shellNode(r)
	if err != nil {
		return nil, err
	}
	user := r.Identity.AuthID
	argv, err := d.shellCommand(user, r.Params.Get("cmd"))
	if err != nil {
		return nil, err
	}
	ln, port, err := listenConsolePort()
	if err != nil {
		return nil, err
	}
	path := "/nodes/" + node
	ticket, err := d.VNC.AssembleVNCTicket(ctx, user, path, port)
	if err != nil {
		ln.Close()
		return nil, err
	}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "vncshell", User: user},
		func(ctx context.Context, l *tasks.Log) error {
			return d.termShell(ctx, l, ln, path, port, argv)
		})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return map[string]any{"user": user, "ticket": ticket, "port": port, "upid": upid.String()}, nil
}

// vncwebsocket is GET /nodes/{node}/vncwebsocket: the ticket must be
// termproxy's for this caller, node and port; a call asking for the
// upgrade is then relayed to the shell task's port.
func (d Deps) vncwebsocket(ctx context.Context, r *api.Request) (any, error) {
	node, err := shellNode(r)
	if err != nil {
		return nil, err
	}
	if d.VNC == nil {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: VNC tickets in this daemon")
	}
	port := int(r.Params.Int("port", 0))
	if err := d.VNC.VerifyVNCTicket(r.Params.Get("vncticket"), r.Identity.AuthID, "/nodes/"+node, port); err != nil {
		return nil, api.Errorf(http.StatusUnauthorized, "permission denied - invalid PVEVNC ticket")
	}
	return &api.WebSocket{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Data: map[string]any{"port": strconv.Itoa(port)},
	}, nil
}

// listenConsolePort listens on the first free port of 5900..5999 on the
// loopback address (PVE's next_vnc_port, with the socket kept, so no other
// process can take the port in between).
func listenConsolePort() (net.Listener, int, error) {
	const first, last = 5900, 5999
	for p := first; p <= last; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			return ln, p, nil
		}
	}
	return nil, 0, fmt.Errorf("unable to find free port (%d-%d)", first, last)
}

// termShell is the vncshell task: termproxy's work on one connection.
func (d Deps) termShell(ctx context.Context, l *tasks.Log, ln net.Listener, path string, port int, argv []string) error {
	cli, err := acceptOne(ctx, ln, termAcceptTimeout)
	if err != nil {
		return fmt.Errorf("failed waiting for client: %w", err)
	}
	defer cli.Close()
	stop := context.AfterFunc(ctx, func() { cli.Close() })
	defer stop()
	l.Printf("client connection: %s", cli.RemoteAddr())

	_ = cli.SetReadDeadline(time.Now().Add(termTicketTimeout))
	rd := bufio.NewReaderSize(cli, termLineMax)
	user, ticket, err := readTicketLine(rd)
	if err != nil {
		return fmt.Errorf("failed reading ticket: %w", err)
	}
	if err := d.VNC.VerifyVNCTicket(ticket, user, path, port); err != nil {
		return errors.New("invalid authentication - 401 invalid ticket")
	}
	if !d.Privs.CheckPrivs(user, path, []string{"Sys.Console"}, false) {
		return errors.New("invalid authentication - 401 permission denied")
	}
	_ = cli.SetReadDeadline(time.Time{})
	if _, err := cli.Write([]byte("OK")); err != nil {
		return fmt.Errorf("error writing response: %w", err)
	}
	sh, err := startShell(argv)
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	stopShell := context.AfterFunc(ctx, func() { sh.pty.Close() })
	defer stopShell()

	var once sync.Once
	end := func() {
		once.Do(func() {
			cli.Close()
			sh.pty.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer end()
		buf := make([]byte, termBuffer)
		for {
			n, err := sh.pty.Read(buf)
			if n > 0 {
				if _, werr := cli.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EIO: the shell and its children closed the PTY
			}
		}
	}()
	err = decodeInput(cli, rd, sh)
	end()
	<-done
	sh.stop()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		l.Printf("connection ended: %v", err)
	}
	return nil
}

// acceptOne takes one connection on ln within timeout and closes ln.
func acceptOne(ctx context.Context, ln net.Listener, timeout time.Duration) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if tl, ok := ln.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(timeout))
	}
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, errors.New("timed out")
		}
		return nil, err
	}
	return c, nil
}

// readTicketLine reads termproxy's first line, "<user>:<ticket>\n", of
// at most termLineMax bytes.
func readTicketLine(rd *bufio.Reader) (user, ticket string, err error) {
	line, err := rd.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", "", errors.New("authentication data is incomplete")
	case errors.Is(err, io.EOF):
		return "", "", errors.New("connection closed before authentication")
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", "", errors.New("timed out")
		}
		return "", "", err
	}
	user, ticket, ok := strings.Cut(string(line[:len(line)-1]), ":")
	if !ok {
		return "", "", errors.New("authentication data is invalid")
	}
	return user, ticket, nil
}

// Message types of termproxy's protocol.
const (
	msgData   = '0'
	msgResize = '1'
	// '2' (ping) and anything else is skipped a byte at a time.
)

// decodeInput reads the client's messages until the connection ends and
// acts on them: data is written to the PTY (through one bounded buffer),
// a resize sets its window size. Malformed numbers and unknown bytes are
// skipped, as termproxy does.
func decodeInput(cli net.Conn, rd *bufio.Reader, sh *shell) error {
	buf := make([]byte, termBuffer)
	for {
		typ, err := rd.ReadByte()
		if err != nil {
			return err
		}
		switch typ {
		case msgData:
			if _, err := rd.ReadByte(); err != nil { // the ':'
				return err
			}
			n, ok, err := readNumber(rd)
			if err != nil {
				return err
			}
			for ok && n > 0 {
				m, err := io.ReadFull(rd, buf[:min(n, len(buf))])
				if m > 0 {
					if werr := writePTY(sh.pty, buf[:m], cli); werr != nil {
						return werr
					}
				}
				if err != nil {
					return err
				}
				n -= m
			}
		case msgResize:
			if _, err := rd.ReadByte(); err != nil {
				return err
			}
			cols, ok1, err := readNumber(rd)
			if err != nil {
				return err
			}
			rows, ok2, err := readNumber(rd)
			if err != nil {
				return err
			}
			if ok1 && ok2 {
				_ = sh.resize(cols, rows)
			}
		}
	}
}

// termWriteCheck is how often a write to a PTY that takes no input
// (its program does not read, the terminal's buffer is full) looks whether
// the client has gone: that ends the shell too.
const termWriteCheck = time.Second

// writePTY writes p to the PTY; while the PTY takes nothing, it checks
// every termWriteCheck whether the client has closed its connection (cli)
// and then returns io.EOF.
func writePTY(pty *os.File, p []byte, cli net.Conn) error {
	for len(p) > 0 {
		_ = pty.SetWriteDeadline(time.Now().Add(termWriteCheck))
		n, err := pty.Write(p)
		p = p[n:]
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if peerClosed(cli) {
			return io.EOF
		}
	}
	return nil
}

// peerClosed reports whether c's peer has shut its side down (POLLRDHUP),
// even with data not read yet.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	if err := rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(pfd, 0); err == nil && n > 0 {
			closed = pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
		}
	}); err != nil {
		return true // closed on our side
	}
	return closed
}

// readNumber reads a decimal number ended by ':'; ok is false (and the
// bytes read are dropped) for one that is not a number or longer than
// termNumberMax digits.
func readNumber(rd *bufio.Reader) (n int, ok bool, err error) {
	var digits [termNumberMax]byte
	for i := 0; ; i++ {
		c, err := rd.ReadByte()
		if err != nil {
			return 0, false, err
		}
		if c == ':' {
			v, perr := strconv.ParseUint(string(digits[:i]), 10, 31)
			return int(v), perr == nil, nil
		}
		if i == termNumberMax {
			return 0, false, nil
		}
		digits[i] = c
	}
}

// shell is a command running on a PTY.
type shell struct {
	pty  *os.File // the PTY's master side
	cmd  *exec.Cmd
	done chan struct{} // closed when stop has waited for cmd
}

// startShell starts argv in a new session on a new PTY, as its
// controlling terminal, with termproxy's environment: PATH, USER, HOME,
// LANG, LANGUAGE and LC_* of the daemon, and TERM=xterm-256color.
func startShell(argv []string) (*shell, error) {
	master, tty, err := openPTY()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	sh := &shell{pty: master, done: make(chan struct{})}
	if err := sh.resize(termCols, termRows); err != nil {
		master.Close()
		return nil, err
	}
	env := []string{"TERM=xterm-256color"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "USER", k == "HOME", k == "LANG", k == "LANGUAGE", strings.HasPrefix(k, "LC_"):
			env = append(env, kv)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// Ctty 0: the child's stdin, the PTY.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		master.Close()
		return nil, err
	}
	sh.cmd = cmd
	return sh, nil
}

// openPTY opens a new PTY's master (pollable, so a Close ends a Read in
// progress) and its terminal side.
func openPTY() (master, tty *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlockpt: %w", err)
		}
		var err error
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// control runs fn on f's descriptor without making f blocking (as Fd
// would).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// resize sets the PTY's window size (TIOCSWINSZ; the shell gets SIGWINCH).
func (sh *shell) resize(cols, rows int) error {
	ws := &unix.Winsize{Col: uint16(min(cols, 0xFFFF)), Row: uint16(min(rows, 0xFFFF))}
	return control(sh.pty, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
}

// stop ends the shell: its process group is hung up and, if the shell
// has not ended within termKillGrace, killed; stop waits for the shell.
func (sh *shell) stop() {
	sh.pty.Close()
	// Not waited for yet, so the group's id is still the shell's.
	pgid := sh.cmd.Process.Pid // the session's (Setsid)
	_ = syscall.Kill(-pgid, syscall.SIGHUP)
	go func() {
		_ = sh.cmd.Wait()
		close(sh.done)
	}()
	select {
	case <-sh.done:
	case <-time.After(termKillGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-sh.done
	}
}
