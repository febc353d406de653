package qemu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQEMUIntegration starts a real VM (software emulation) from a config
// through CommandLine and drives it over QMP.
func TestQEMUIntegration(t *testing.T) {
	qemuBin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed; skipping the QEMU integration test")
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed; skipping the QEMU integration test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "pq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	disk := filepath.Join(dir, "vm-900-disk-0.raw")
	if out, err := exec.CommandContext(ctx, qemuImg, "create", "-f", "raw", disk, "1M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}

	cfg, err := Parse(900, []byte(`#integration test VM
boot: order=scsi0;ide2;net0
cores: 1
ide2: none,media=cdrom
memory: 128
name: itest
net0: virtio=BC:24:11:00:09:00,bridge=vmbr0,firewall=1
scsi0: local:900/vm-900-disk-0.raw,cache=writeback,size=1M
scsihw: virtio-scsi-pci
smbios1: uuid=5d6e7f80-91a2-4b3c-8d4e-5f60718293a4
sockets: 1
vmgenid: 9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d
`))
	if err != nil {
		t.Fatal(err)
	}
	qmpSock := filepath.Join(dir, "900.qmp")
	args, err := CommandLine(cfg, Options{
		VMID:       900,
		Binary:     qemuBin,
		KVM:        false,
		Upstream:   true, // Debian's QEMU has no -id
		QMPSocket:  qmpSock,
		PIDFile:    filepath.Join(dir, "900.pid"),
		VNCSocket:  filepath.Join(dir, "900.vnc"),
		NetBackend: "user",
		ResolveVolume: func(volid string) (string, string, error) {
			if volid != "local:900/vm-900-disk-0.raw" {
				return "", "", errors.New("unknown volume")
			}
			return disk, "raw", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("command line: %s", strings.Join(args, " "))

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Wait must not hang on output pipes a stray child keeps open.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when QEMU has exited; waitErr is then set.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("qemu (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
	})

	// Wait for the QMP socket (QEMU creates it before running the guest).
	var c *QMPClient
	for c == nil {
		select {
		case <-exited:
			t.Fatalf("qemu exited early: %v\n%s", waitErr, stderr.String())
		case <-ctx.Done():
			t.Fatalf("no QMP socket: %v\n%s", ctx.Err(), stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(qmpSock); err != nil {
			continue
		}
		if c, err = DialQMP(ctx, qmpSock); err != nil {
			t.Logf("DialQMP: %v (retrying)", err)
			c = nil
		}
	}
	defer c.Close()
	if c.Version.QEMU.Major < 6 {
		t.Errorf("greeting version = %s", c.Version)
	}

	wantStatus := func(status string, running bool) {
		t.Helper()
		s, err := c.QueryStatus(ctx)
		if err != nil {
			t.Fatalf("QueryStatus: %v", err)
		}
		if s.Status != status || s.Running != running {
			t.Fatalf("QueryStatus = %+v, want %s (running %v)", s, status, running)
		}
	}
	wantStatus("running", true)

	v, err := c.QueryVersion(ctx)
	if err != nil || v != c.Version {
		t.Errorf("QueryVersion = %+v, %v; greeting %+v", v, err, c.Version)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus("paused", false)
	if err := c.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus("running", true)
	if err := c.SystemReset(ctx); err != nil {
		t.Fatal(err)
	}
	// Events STOP/RESUME/RESET arrive asynchronously.
	seen := map[string]bool{}
	for !(seen["STOP"] && seen["RESUME"] && seen["RESET"]) {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("events closed")
			}
			seen[ev.Event] = true
		case <-ctx.Done():
			t.Fatalf("events seen %v: %v", seen, ctx.Err())
		}
	}
	// A QMP error is typed.
	var qe *QMPError
	if err := c.Execute(ctx, "no-such-command", nil, nil); !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("Execute(no-such-command) error = %v", err)
	}
	// The devices CommandLine asked for exist.
	var blocks []struct {
		Device string `json:"device"`
	}
	if err := c.Execute(ctx, "query-block", nil, &blocks); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range blocks {
		names = append(names, b.Device)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "drive-scsi0") || !strings.Contains(got, "drive-ide2") {
		t.Errorf("query-block devices = %s", got)
	}

	if err := c.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("qemu exit: %v\n%s", waitErr, stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("qemu did not exit after quit: %v", ctx.Err())
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("QMP connection not closed after quit")
	}
	if err := c.Stop(ctx); !errors.Is(err, ErrQMPClosed) {
		t.Errorf("Stop after quit error = %v; want ErrQMPClosed", err)
	}
}
