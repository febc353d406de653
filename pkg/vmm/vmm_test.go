package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu"
)

const testConf = `boot: order=scsi0
cores: 1
memory: 128
name: vmmtest
net0: virtio=BC:24:11:00:09:00,bridge=vmbr0
scsi0: local:%d/disk.raw,size=1M
scsihw: virtio-scsi-pci
sockets: 1
`

// setup returns a Manager on a short temporary RunDir and a config for vmid
// with a tiny raw disk; it skips without qemu-system-x86_64.
func setup(t *testing.T, vmid int, died func(int, error)) (*Manager, *qemu.Config) {
	t.Helper()
	return setupDisk(t, vmid, died, "raw")
}

// setupDisk is setup with a disk image of the given format (raw, qcow2).
func setupDisk(t *testing.T, vmid int, died func(int, error), format string) (*Manager, *qemu.Config) {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	img, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Skip("qemu-img not installed")
	}
	dir, err := os.MkdirTemp("", "vm") // socket paths < 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	disk := filepath.Join(t.TempDir(), "disk."+format)
	if out, err := exec.Command(img, "create", "-f", format, disk, "1M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	m := New(Config{
		RunDir: dir, QEMUBinary: bin, Upstream: true, NetBackend: "user",
		KVM:           func() bool { return false },
		ResolveVolume: func(string) (string, string, error) { return disk, format, nil },
		Died:          died,
	})
	cfg, err := qemu.Parse(vmid, []byte(sprintf(testConf, vmid)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pid, ok := m.Running(vmid); ok {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return m, cfg
}

func TestLifecycle(t *testing.T) {
	const vmid = 901
	m, cfg := setup(t, vmid, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Concurrent starts (with and without the per-VM lock): exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				unlock := m.Lock(vmid)
				defer unlock()
			}
			errs[i] = m.Start(ctx, cfg)
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrRunning):
			t.Fatalf("Start: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d Starts succeeded: %v", ok, errs)
	}
	if err := m.Start(ctx, cfg); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start = %v; want ErrRunning", err)
	}

	want := func(status string) State {
		t.Helper()
		s, err := m.Status(ctx, vmid)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Running || s.QMPStatus != status {
			t.Fatalf("Status = %+v; want running, QMP %s", s, status)
		}
		return s
	}
	s := want("running")
	if s.PID <= 0 || s.RSS == 0 || s.VSize == 0 || s.Threads == 0 {
		t.Fatalf("Status figures = %+v", s)
	}
	if _, err := os.Stat("/proc/" + itoa(s.PID)); err != nil {
		t.Fatalf("pid %d: %v", s.PID, err)
	}
	t.Logf("status: %+v", s)

	if err := m.Suspend(ctx, vmid); err != nil {
		t.Fatal(err)
	}
	want("paused")
	if err := m.Resume(ctx, vmid); err != nil {
		t.Fatal(err)
	}
	want("running")
	if err := m.Reset(ctx, vmid); err != nil {
		t.Fatal(err)
	}

	// No OS in the guest: ACPI powerdown is ignored, forceStop stops it.
	if err := m.Shutdown(ctx, vmid, time.Second, false); err == nil {
		t.Fatal("Shutdown without forceStop of a guest without OS succeeded")
	}
	want("running")

	if err := m.Stop(ctx, vmid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s, err := m.Status(ctx, vmid); err != nil || s.Running {
		t.Fatalf("Status after Stop = %+v, %v", s, err)
	}
	if alive(s.PID) {
		t.Fatalf("process %d still there after Stop", s.PID)
	}
	for _, f := range []string{m.PIDFile(vmid), m.QMPSocket(vmid)} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", f, err)
		}
	}

	// Restart, then Shutdown with forceStop.
	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(ctx, vmid, time.Second, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Running(vmid); ok {
		t.Fatal("running after Shutdown with forceStop")
	}
}

// TestDeath kills QEMU behind the Manager's back: the Wait goroutine of a
// process it started, and Watch for a process only known by its pid file
// (a second Manager on the same RunDir, as after a daemon restart).
func TestDeath(t *testing.T) {
	const vmid = 902
	died := make(chan int, 4)
	m, cfg := setup(t, vmid, func(id int, _ error) { died <- id })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	waitStopped := func(m *Manager) {
		t.Helper()
		for {
			s, err := m.Status(ctx, vmid)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Running {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("still running after SIGKILL: %+v", s)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// Started by this Manager; QEMU outlives the Start context.
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	if err := m.Start(sctx, cfg); err != nil {
		t.Fatal(err)
	}
	scancel()
	time.Sleep(300 * time.Millisecond)
	pid, ok := m.Running(vmid)
	if !ok {
		t.Fatal("QEMU ended with the Start context")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case id := <-died:
		if id != vmid {
			t.Fatalf("Died(%d)", id)
		}
	case <-ctx.Done():
		t.Fatal("Died not called")
	}
	waitStopped(m)
	if _, err := os.Stat(m.PIDFile(vmid)); !os.IsNotExist(err) {
		t.Errorf("pid file left: %v", err)
	}

	// Found via pid file by another Manager (daemon restart).
	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	died2 := make(chan int, 4)
	m2 := New(m.cfg)
	m2.cfg.Died = func(id int, _ error) { died2 <- id }
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go m2.Watch(wctx, 100*time.Millisecond)
	if s, err := m2.Status(ctx, vmid); err != nil || !s.Running || s.QMPStatus != "running" {
		t.Fatalf("adopted Status = %+v, %v", s, err)
	}
	pid, _ = m2.Running(vmid)
	syscall.Kill(pid, syscall.SIGKILL)
	select {
	case id := <-died2:
		if id != vmid {
			t.Fatalf("Died(%d)", id)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not notice")
	}
	waitStopped(m2)
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
func itoa(n int) string                 { return strconv.Itoa(n) }
