package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/pvenode/pvenode/pkg/qemu"
)

// SPICE TLS ports of QEMU processes come from this range (PVE's
// next_spice_port), on qemu.SpiceAddr.
const (
	SpicePortMin = 61000
	SpicePortMax = 61999
)

// ErrNoSpice is returned for a running VM whose QEMU has no SPICE server.
var ErrNoSpice = errors.New("no spice port")

// spicePorts hands out SPICE ports. A port stays reserved from allocation
// until the QEMU that got it has bound it (or failed), so two concurrent
// starts never get the same free port.
type spicePorts struct {
	mu       sync.Mutex   // guards reserved
	reserved map[int]bool // ports allocated to starts in progress
}

// alloc returns the first port of the range that is neither reserved nor
// bound on addr, and reserves it.
func (s *spicePorts) alloc(addr string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reserved == nil {
		s.reserved = map[int]bool{}
	}
	for port := SpicePortMin; port <= SpicePortMax; port++ {
		if s.reserved[port] {
			continue
		}
		// Like PVE: a port is free if we can bind it (without SO_REUSEADDR
		// semantics mattering: QEMU binds with it, so TIME_WAIT is fine).
		l, err := net.Listen("tcp4", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return 0, fmt.Errorf("allocate spice port: %w", err)
		}
		l.Close()
		s.reserved[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("unable to find free port (%d-%d)", SpicePortMin, SpicePortMax)
}

func (s *spicePorts) release(port int) {
	s.mu.Lock()
	delete(s.reserved, port)
	s.mu.Unlock()
}

// spiceOptions allocates the SPICE port for cfg if its display has SPICE
// and fills opts; release frees the reservation once QEMU has bound the
// port or failed (it is a no-op without SPICE).
func (m *Manager) spiceOptions(cfg *qemu.Config, opts *qemu.Options) (release func(), err error) {
	spice, err := qemu.SpiceDisplay(cfg.Props)
	if err != nil || !spice {
		return func() {}, err
	}
	port, err := m.spice.alloc(qemu.SpiceAddr)
	if err != nil {
		return nil, err
	}
	opts.SpicePort = port
	opts.SpiceKeyFile = m.cfg.SpiceKeyFile
	opts.SpiceCertFile = m.cfg.SpiceCertFile
	opts.SpiceCACertFile = m.cfg.SpiceCACertFile
	return func() { m.spice.release(port) }, nil
}

// SpicePort returns the SPICE TLS port of running VM vmid from QMP
// query-spice (PVE's spice_port: tls-port, else port); ErrNoSpice if its
// QEMU has no SPICE server.
func (m *Manager) SpicePort(ctx context.Context, vmid int) (int, error) {
	var info qemu.QMPSpiceInfo
	err := m.qmp(ctx, vmid, func(c *qemu.QMPClient) error {
		var err error
		info, err = c.QuerySpice(ctx)
		return err
	})
	if err != nil {
		var qe *qemu.QMPError
		if errors.As(err, &qe) && qe.Class == "CommandNotFound" {
			return 0, fmt.Errorf("VM %d: %w", vmid, ErrNoSpice)
		}
		return 0, err
	}
	if info.TLSPort > 0 {
		return info.TLSPort, nil
	}
	if info.Port > 0 {
		return info.Port, nil
	}
	return 0, fmt.Errorf("VM %d: %w", vmid, ErrNoSpice)
}

// SetSpicePassword sets the SPICE password of running VM vmid, keeping
// connected clients, and makes it expire after expire (PVE: "+30").
func (m *Manager) SetSpicePassword(ctx context.Context, vmid int, password, expire string) error {
	return m.qmp(ctx, vmid, func(c *qemu.QMPClient) error {
		if err := c.SetPassword(ctx, "spice", password); err != nil {
			return err
		}
		return c.ExpirePassword(ctx, "spice", expire)
	})
}

// spiceHandoffFD is the name the handed-over connection has in QEMU's
// monitor between getfd and add_client.
const spiceHandoffFD = "pvenode-spice-client"

// AddSpiceClient hands a client connection (conn's descriptor; the caller
// closes its own copy afterwards) to running VM vmid's SPICE server, as if
// the client had connected to it: QMP getfd and add_client, TLS when port
// is the VM's TLS port, with the SPICE password still checked. port is the
// SPICE port the client's ticket names; it must be the VM's.
func (m *Manager) AddSpiceClient(ctx context.Context, vmid, port int, conn *os.File) error {
	return m.qmp(ctx, vmid, func(c *qemu.QMPClient) error {
		info, err := c.QuerySpice(ctx)
		if err != nil {
			return err
		}
		var tls bool
		switch {
		case info.TLSPort > 0 && info.TLSPort == port:
			tls = true
		case info.Port > 0 && info.Port == port:
		case info.TLSPort == 0 && info.Port == 0:
			return ErrNoSpice
		default:
			return fmt.Errorf("SPICE port %d is not this VM's", port)
		}
		if err := c.GetFD(ctx, spiceHandoffFD, conn); err != nil {
			return err
		}
		if err := c.AddClient(ctx, "spice", spiceHandoffFD, tls, false); err != nil {
			// add_client takes the descriptor even when SPICE then refuses
			// it; closefd drops it if it was not taken.
			_ = c.CloseFD(ctx, spiceHandoffFD)
			return err
		}
		return nil
	})
}
