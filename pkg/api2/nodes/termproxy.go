package nodes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/termproxy"
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
	ln, port, err := termproxy.Listen()
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

// termShell is the vncshell task: termproxy's work on one connection,
// with the shell on a PTY behind it.
func (d Deps) termShell(ctx context.Context, l *tasks.Log, ln net.Listener, path string, port int, argv []string) error {
	conn, err := termproxy.Accept(ctx, ln, termproxy.AcceptTimeout)
	if err != nil {
		return err
	}
	l.Printf("client connection: %s", conn.RemoteAddr())
	cli, err := termproxy.Handshake(ctx, conn, func(user, ticket string) error {
		if err := d.VNC.VerifyVNCTicket(ticket, user, path, port); err != nil {
			return errors.New("invalid authentication - 401 invalid ticket")
		}
		if !d.Privs.CheckPrivs(user, path, []string{"Sys.Console"}, false) {
			return errors.New("invalid authentication - 401 permission denied")
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer cli.Close()
	sh, err := startShell(argv)
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	err = cli.Relay(ctx, termproxy.Backend{Conn: sh.pty, Resize: sh.resize})
	sh.stop()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		l.Printf("connection ended: %v", err)
	}
	return nil
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
