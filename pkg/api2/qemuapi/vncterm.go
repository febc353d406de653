package qemuapi

import (
	"context"
	"fmt"
	"net"

	"github.com/pvenode/pvenode/pkg/tasks"
)

// The console of a VM whose display is a serial port (vga: serialN): PVE's
// vncproxy runs "vncterm -notls -listen localhost ... -c qm terminal VMID
// -iface serialN -escape 0" with the one-time password for the websocket
// case; here both run in the vncproxy task. The task takes one connection
// within 10 s, then does qm terminal's checks (the interface is
// configured as a socket, the VM runs; failures end the task with qm
// terminal's message), connects to the serial socket RunDir/VMID.serialN
// and serves RFB on the connection: VNC authentication with the
// password, then the serial port's bytes as an 80x25 terminal and the
// client's keys as bytes back.

// vncTerm is the vncproxy task of a serial display.
func (d *Deps) vncTerm(ctx context.Context, l *tasks.Log, ln net.Listener, console serialConsole, password string) error {
	cli, err := vncAccept(ctx, ln)
	if err != nil {
		return err
	}
	defer cli.Close()
	l.Printf("client connection: %s", cli.RemoteAddr())
	iface, err := console.serialInterface()
	if err != nil {
		return err
	}
	vmid := console.vmid
	serial, err := console.dialSerial(ctx, iface)
	if err != nil {
		return err
	}
	l.Printf("connected to %s", iface)
	// Either side's end ends the task, OK; a failed handshake (a wrong
	// password: vncterm.ErrAuthFailed) or broken protocol fails it.
	return d.SerialTerminal(ctx, cli, serial, password, fmt.Sprintf("VM %d %s", vmid, iface))
}
