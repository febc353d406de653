package qemuapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/termproxy"
)

// The serial console of a VM (qemu-server's termproxy: PVE runs the
// termproxy program with "qm terminal VMID -escape 0 [-iface serialN]"
// behind it; here both run in-process):
//
//  1. POST .../termproxy (pvedaemon) listens on 127.0.0.1 on the first
//     free port from 5900 and starts a vncproxy task; it answers the port,
//     the task's UPID and a VNC ticket over the caller, /vms/VMID and the
//     port. Only the VM's existence is checked here, as PVE does.
//  2. GET .../vncwebsocket (pveproxy, vnc.go) checks that ticket and
//     relays the WebSocket to the port.
//  3. The task takes one connection within 10 s; the client's ticket line
//     must carry exactly the ticket answered in 1 (termproxy's
//     --ticket-fd), verify for its user, /vms/VMID and the port, and the
//     user must hold VM.Console there. After "OK", qm terminal's work: the
//     serial interface is the serial parameter, else the VM's display if
//     it is serialN, else the first serialN that is a socket; it must be
//     configured as a socket and the VM running. A failure is written to
//     the terminal (as qm terminal's message on termproxy's PTY) and ends
//     the console and the task. Otherwise the terminal shows "starting
//     serial terminal on interface serialN" and the connection is relayed
//     to the serial socket, RunDir/VMID.serialN (socat's raw mode: bytes
//     pass as they are; resize messages have nothing to resize).

// serialConnectTimeout bounds the connection to the serial socket.
const serialConnectTimeout = 5 * time.Second

// serialVGARE is a display on a serial port (vga: serialN).
var serialVGARE = regexp.MustCompile(`^serial\d+$`)

// termproxyMethod declares POST .../termproxy.
func termproxyMethod(d *Deps) api.Method {
	return api.Method{
		Name: "termproxy", Path: "/nodes/{node}/qemu/{vmid}/termproxy", HTTP: "POST",
		Description: "Creates a TCP proxy connections.",
		Protected:   true,
		RunOnNode:   true,
		Permissions: api.Permissions{Check: []any{"perm", "/vms/{vmid}", []any{"VM.Console"}}},
		Params: map[string]*api.Schema{
			"node":   api.Str().Fmt("pve-node").TT("<string>"),
			"serial": api.Str().Enums("serial0", "serial1", "serial2", "serial3").Opt(),
			"vmid":   api.Int().Fmt("pve-vmid").Range(100, 999999999).TT("<integer> (100 - 999999999)"),
		},
		Returns: (&api.Schema{Properties: map[string]*api.Schema{
			"port":   api.Int(),
			"ticket": api.Str(),
			"upid":   api.Str(),
			"user":   api.Str(),
		}}).Additional(false),
		Handle: d.termproxy,
	}
}

// termproxy is POST .../termproxy.
func (d *Deps) termproxy(ctx context.Context, r *api.Request) (any, error) {
	tk, vmid, cfg, err := d.consoleStart(r)
	if err != nil {
		return nil, err
	}
	iface := r.Params.Get("serial")
	if iface == "" {
		if vga, err := cfg.Props.VGA(); err == nil && serialVGARE.MatchString(vga.Type) {
			iface = vga.Type
		}
	}
	ln, port, err := termproxy.Listen()
	if err != nil {
		return nil, err
	}
	user := r.Identity.AuthID
	path := "/vms/" + strconv.Itoa(vmid)
	ticket, err := tk.AssembleVNCTicket(ctx, user, path, port)
	if err != nil {
		ln.Close()
		return nil, err
	}
	console := serialConsole{d: d, tickets: tk, node: r.NodeName, vmid: vmid, iface: iface, path: path, port: port, ticket: ticket}
	upid, err := d.Tasks.Start(ctx, tasks.TaskSpec{Type: "vncproxy", ID: strconv.Itoa(vmid), User: user},
		func(ctx context.Context, l *tasks.Log) error {
			return console.run(ctx, l, ln)
		})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return map[string]any{"user": user, "ticket": ticket, "port": port, "upid": upid.String()}, nil
}

// serialConsole is one termproxy task of a VM.
type serialConsole struct {
	d       *Deps
	tickets VNCTickets
	node    string
	vmid    int
	iface   string // serialN asked for; "" for the first socket
	path    string // /vms/VMID
	port    int
	ticket  string // the one answered: the client must send it
}

// run is the task: one client, then the serial socket behind it.
func (c serialConsole) run(ctx context.Context, l *tasks.Log, ln net.Listener) error {
	conn, err := termproxy.Accept(ctx, ln, termproxy.AcceptTimeout)
	if err != nil {
		return err
	}
	l.Printf("client connection: %s", conn.RemoteAddr())
	cli, err := termproxy.Handshake(ctx, conn, c.authenticate)
	if err != nil {
		return err
	}
	defer cli.Close()
	iface, err := c.serialInterface()
	if err != nil {
		// qm terminal's death on the terminal, "\n" made "\r\n" by the PTY.
		_, _ = cli.Write([]byte(err.Error() + "\r\n"))
		return err
	}
	_, _ = fmt.Fprintf(cli, "starting serial terminal on interface %s\r\n", iface)
	serial, err := c.dialSerial(ctx, iface)
	if err != nil {
		_, _ = cli.Write([]byte(err.Error() + "\r\n"))
		return err
	}
	l.Printf("connected to %s", iface)
	if err := cli.Relay(ctx, termproxy.Backend{Conn: serial}); err != nil {
		if ctx.Err() != nil {
			return err
		}
		l.Printf("connection ended: %v", err)
	}
	return nil
}

// dialSerial connects to the VM's socket of serial interface iface,
// RunDir/VMID.serialN (where pkg/qemu makes QEMU listen).
func (c serialConsole) dialSerial(ctx context.Context, iface string) (net.Conn, error) {
	sock := filepath.Join(filepath.Dir(c.d.VMs.QMPSocket(c.vmid)), fmt.Sprintf("%d.%s", c.vmid, iface))
	dialer := net.Dialer{Timeout: serialConnectTimeout}
	conn, err := dialer.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("VM %d: connect to %s: %w", c.vmid, iface, err)
	}
	return conn, nil
}

// authenticate checks the client's ticket line as termproxy does with
// --ticket-fd, --vncticket-endpoint, --verify-port and --perm VM.Console;
// every refusal has termproxy's one message.
func (c serialConsole) authenticate(user, ticket string) error {
	refused := errors.New("authentication request failed")
	if subtle.ConstantTimeCompare([]byte(ticket), []byte(c.ticket)) != 1 {
		return refused
	}
	if err := c.tickets.VerifyVNCTicket(ticket, user, c.path, c.port); err != nil {
		return refused
	}
	if !c.d.Privs.CheckPrivs(user, c.path, []string{"VM.Console"}, false) {
		return refused
	}
	return nil
}

// serialInterface is qm terminal's choice and checks, with its messages,
// on the VM's config as it is now.
func (c serialConsole) serialInterface() (string, error) {
	cfg, _, err := c.d.loadConfig(c.node, c.vmid)
	if err != nil {
		return "", err
	}
	iface := c.iface
	if iface != "" {
		v, ok := cfg.Props[iface]
		if !ok || v == "" {
			return "", fmt.Errorf("serial interface '%s' is not configured", iface)
		}
		if v != "socket" {
			return "", fmt.Errorf("wrong serial type on interface '%s'", iface)
		}
	} else {
		for i := range qemu.MaxSerial {
			k := "serial" + strconv.Itoa(i)
			if cfg.Props[k] == "socket" {
				iface = k
				break
			}
		}
		if iface == "" {
			return "", errors.New("unable to find a serial interface")
		}
	}
	if _, ok := c.d.VMs.Running(c.vmid); !ok {
		return "", fmt.Errorf("VM %d not running", c.vmid)
	}
	return iface, nil
}
