package qemuapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/termproxy"
)

// The VNC console (qemu-server's vncproxy and vncwebsocket):
//
//  1. POST .../vncproxy (pvedaemon) listens on 127.0.0.1 on the first free
//     port from 5900 and starts a vncproxy task that takes one connection
//     on it within 10 s, sets a one-time VNC password on the VM (QMP
//     set_password, expiring in 30 s, as qm vncproxy does) and relays the
//     connection to QEMU's VNC socket. It answers the port, the task's UPID
//     and a VNC ticket (signed like a login ticket over user, /vms/VMID and
//     port) prefixed with that password, as PVE does. A VM whose display
//     is a serial port (vga: serialN) gets vncterm instead: an RFB server
//     in the task that shows the serial port as a terminal (vncterm.go).
//  2. GET .../vncwebsocket (pveproxy) checks the ticket against the caller,
//     the VM's path and the port, and the framework upgrades the call to a
//     WebSocket relayed to that port (api.WebSocket).

// VNC console constants, PVE's values.
const (
	vncAcceptTimeout = 10 * time.Second
	vncPasswordLen   = 8
	// vncRelayBuffer is the buffer of each direction of the task's relay.
	vncRelayBuffer = 64 << 10
)

// VNCTickets signs and checks VNC tickets; Deps.Privs implements it in
// both daemons (access.Authenticator).
type VNCTickets interface {
	AssembleVNCTicket(ctx context.Context, user, path string, port int) (string, error)
	VerifyVNCTicket(ticket, user, path string, port int) error
}

// vncproxyMethod declares POST .../vncproxy.
func vncproxyMethod(d *Deps) api.Method {
	return api.Method{
		Name: "vncproxy", Path: "/nodes/{node}/qemu/{vmid}/vncproxy", HTTP: "POST",
		Description: "Creates a TCP VNC proxy connections.",
		Protected:   true,
		RunOnNode:   true,
		Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Console"}}},
		Params: map[string]*api.Schema{
			"generate-password": api.Bool().Def(0).Opt().TT("<boolean>"),
			"node":              api.Str().Fmt("pve-node").TT("<string>"),
			"vmid":              api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
			"websocket":         api.Bool().Opt().TT("<boolean>"),
		},
		Returns: (&api.Schema{Properties: map[string]*api.Schema{
			"cert":     api.Str(),
			"password": api.Str().Opt(),
			"port":     api.Int(),
			"ticket":   api.Str(),
			"upid":     api.Str(),
			"user":     api.Str(),
		}}).Additional(false),
		Handle: d.vncproxy,
	}
}

// vncwebsocketMethod declares GET .../vncwebsocket.
func vncwebsocketMethod(d *Deps) api.Method {
	return api.Method{
		Name: "vncwebsocket", Path: "/nodes/{node}/qemu/{vmid}/vncwebsocket", HTTP: "GET",
		Description: "Opens a websocket for VNC traffic.",
		RunOnNode:   true,
		Permissions: api.Permissions{
			Description: "You also need to pass a valid ticket (vncticket).",
			Check:       []any{"perm", "/vms/{vmid}", []any{"VM.Console"}},
		},
		Params: map[string]*api.Schema{
			"node":      api.Str().Fmt("pve-node").TT("<string>"),
			"port":      api.Int().Range(5900, 5999).TT("<integer> (5900 - 5999)"),
			"vmid":      api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
			"vncticket": api.Str().MaxLen(512).TT("<string>"),
		},
		Returns: api.Obj(map[string]*api.Schema{
			"port": api.Str(),
		}),
		WebSocket: true,
		Handle:    d.vncwebsocket,
	}
}

// notThisNode refuses a console of a VM on another node. The console
// methods are declared RunOnNode, so pveproxy sends such calls to that
// node (PVE tunnels them over SSH); one arriving here was called on a
// daemon that does not forward (pvedaemon directly).
func notThisNode(r *api.Request) error {
	if n := r.Params.Get("node"); n != "localhost" && n != r.NodeName {
		return api.Errorf(http.StatusInternalServerError, "console of a VM on node '%s': call it through pveproxy", n)
	}
	return nil
}

// consoleStart is what every console call of a VM checks first: this
// daemon runs tasks and signs VNC tickets, the VM is on this node and
// exists. It returns the ticket signer, the VMID and the VM's config.
func (d *Deps) consoleStart(r *api.Request) (VNCTickets, int, *qemu.Config, error) {
	if err := d.needWorkers(); err != nil {
		return nil, 0, nil, err
	}
	if err := notThisNode(r); err != nil {
		return nil, 0, nil, err
	}
	tk, ok := d.Privs.(VNCTickets)
	if !ok {
		return nil, 0, nil, api.Errorf(http.StatusNotImplemented, "not implemented: VNC tickets in this daemon")
	}
	vmid := vmidOf(r)
	cfg, _, err := d.loadConfig(r.NodeName, vmid) // the VM exists?
	if err != nil {
		return nil, 0, nil, err
	}
	return tk, vmid, cfg, nil
}

// vncproxy is POST .../vncproxy.
func (d *Deps) vncproxy(ctx context.Context, r *api.Request) (any, error) {
	tk, vmid, cfg, err := d.consoleStart(r)
	if err != nil {
		return nil, err
	}
	// A display on a serial port is shown by vncterm (vncterm.go).
	var serial string
	if vga, err := cfg.Props.VGA(); err == nil && serialVGARE.MatchString(vga.Type) {
		serial = vga.Type
		if d.SerialTerminal == nil {
			return nil, api.Errorf(http.StatusNotImplemented, "not implemented: serial terminal console in this daemon")
		}
	}
	cert, err := d.Config.ReadFile("pve-root-ca.pem")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ln, port, err := termproxy.Listen()
	if err != nil {
		return nil, err
	}
	user := r.Identity.AuthID
	ticket, err := tk.AssembleVNCTicket(ctx, user, "/vms/"+strconv.Itoa(vmid), port)
	if err != nil {
		ln.Close()
		return nil, err
	}
	password, err := vncPassword()
	if err != nil {
		ln.Close()
		return nil, err
	}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "vncproxy", ID: strconv.Itoa(vmid), User: user},
		func(ctx context.Context, l *tasks.Log) error {
			if serial != "" {
				console := serialConsole{d: d, node: r.NodeName, vmid: vmid, iface: serial}
				return d.vncTerm(ctx, l, ln, console, password)
			}
			return d.vncRelay(ctx, l, ln, vmid, password)
		})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return map[string]any{
		"user":     user,
		"ticket":   password + ":" + ticket,
		"port":     port,
		"upid":     upid.String(),
		"cert":     string(cert),
		"password": password,
	}, nil
}

// vncPassword returns PVE's one-time VNC password: 8 characters from '!'
// to '`'.
func vncPassword() (string, error) {
	b := make([]byte, vncPasswordLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = '!' + b[i]%('`'-'!'+1)
	}
	return string(b), nil
}

// vncRelay is the vncproxy task: one connection within vncAcceptTimeout,
// relayed to the VM's VNC socket.
func (d *Deps) vncRelay(ctx context.Context, l *tasks.Log, ln net.Listener, vmid int, password string) error {
	cli, err := vncAccept(ctx, ln)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, ok := d.VMs.Running(vmid); !ok {
		return fmt.Errorf("VM %d not running", vmid)
	}
	if err := setVNCPassword(ctx, d.VMs.QMPSocket(vmid), password); err != nil {
		return fmt.Errorf("VM %d: set VNC password: %w", vmid, err)
	}
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	vnc, err := dialer.DialContext(dctx, "unix", d.VMs.VNCSocket(vmid))
	cancel()
	if err != nil {
		return fmt.Errorf("VM %d: connect to VNC: %w", vmid, err)
	}
	defer vnc.Close()
	stop := context.AfterFunc(ctx, func() { cli.Close(); vnc.Close() })
	defer stop()
	relay(cli, vnc)
	return nil
}

// vncAccept takes the vncproxy task's one connection on ln within
// vncAcceptTimeout (or until ctx ends) and closes ln.
func vncAccept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	cli, err := termproxy.AcceptOne(ctx, ln, vncAcceptTimeout)
	if err != nil {
		if termproxy.IsTimeout(err) {
			return nil, errors.New("connection timed out")
		}
		return nil, fmt.Errorf("connection failed: %w", err)
	}
	return cli, nil
}

// setVNCPassword sets the VM's VNC password, valid for a connection made
// in the next 30 s (qm vncproxy's set_password and expire_password).
func setVNCPassword(ctx context.Context, qmpSocket, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := qemu.DialQMP(ctx, qmpSocket)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Execute(ctx, "set_password", map[string]string{"protocol": "vnc", "password": password}, nil); err != nil {
		return err
	}
	return c.Execute(ctx, "expire_password", map[string]string{"protocol": "vnc", "time": "+30"}, nil)
}

// relay copies both ways until either side ends, each direction through
// one bounded buffer (a slow reader slows the writer down), then closes
// both.
func relay(a, b net.Conn) {
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, vncRelayBuffer)
		// (Between a TCP and a Unix socket io.CopyBuffer may splice
		// through a kernel pipe instead, which is bounded too.)
		_, _ = io.CopyBuffer(dst, src, buf)
		// Either side's end ends the console.
		a.Close()
		b.Close()
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// vncwebsocket is GET .../vncwebsocket: the ticket must be vncproxy's for
// this caller, VM and port; a call asking for the upgrade is then relayed
// to the vncproxy task's port.
func (d *Deps) vncwebsocket(ctx context.Context, r *api.Request) (any, error) {
	if err := notThisNode(r); err != nil {
		return nil, err
	}
	tk, ok := d.Privs.(VNCTickets)
	if !ok {
		return nil, api.Errorf(http.StatusNotImplemented, "not implemented: VNC tickets in this daemon")
	}
	vmid := vmidOf(r)
	port := int(r.Params.Int("port", 0))
	if err := tk.VerifyVNCTicket(r.Params.Get("vncticket"), r.Identity.AuthID, "/vms/"+strconv.Itoa(vmid), port); err != nil {
		return nil, api.Errorf(http.StatusUnauthorized, "permission denied - invalid PVEVNC ticket")
	}
	if _, _, err := d.loadConfig(r.NodeName, vmid); err != nil { // VM exists?
		return nil, err
	}
	return &api.WebSocket{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Data: map[string]any{"port": strconv.Itoa(port)},
	}, nil
}
