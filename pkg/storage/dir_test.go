package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needQemuImg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(DefaultQemuImg); err != nil {
		t.Skip("qemu-img not installed (Debian qemu-utils)")
	}
}

func newTestDir(t *testing.T, extra string) (*Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	cfg, err := Parse("storage.cfg", []byte("dir: st\n\tpath "+root+"\n\tcontent images,rootdir,iso,vztmpl,backup,snippets\n"+extra+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := cfg.Lookup("st")
	d, err := NewDir(s, DirOptions{LockDir: filepath.Join(t.TempDir(), "lock")})
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

func TestActivateLayout(t *testing.T) {
	d, root := newTestDir(t, "")
	if err := d.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"images", "private", "template/iso", "template/cache", "dump", "snippets"} {
		if st, err := os.Stat(filepath.Join(root, sub)); err != nil || !st.IsDir() {
			t.Errorf("%s not created: %v", sub, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "import")); err == nil {
		t.Errorf("import created without import content")
	}

	d, root = newTestDir(t, "\tcreate-base-path 0\n")
	if err := d.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist or is unreachable") {
		t.Errorf("Activate without base = %v", err)
	}
	d, root = newTestDir(t, "\tcreate-subdirs 0\n")
	if err := d.Activate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("create-subdirs 0 created %v", ents)
	}
	d, _ = newTestDir(t, "\tcontent-dirs iso=same,vztmpl=same\n")
	if err := d.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "for multiple content types") {
		t.Errorf("Activate with shared dirs = %v", err)
	}
	d, _ = newTestDir(t, "\tis_mountpoint yes\n")
	if err := d.Activate(context.Background()); err == nil || !strings.Contains(err.Error(), "expected to be a mount point") {
		t.Errorf("Activate not mounted = %v", err)
	}
	if st, err := d.Status(context.Background()); err != nil || st.Active {
		t.Errorf("Status not mounted = %+v, %v", st, err)
	}
}

func TestAllocListFree(t *testing.T) {
	needQemuImg(t)
	ctx := context.Background()
	d, root := newTestDir(t, "")
	tests := []struct {
		format, name string
		kib          uint64
		wantVolid    string
	}{
		{"qcow2", "", 1024, "st:100/vm-100-disk-0.qcow2"},
		{"raw", "", 2048, "st:100/vm-100-disk-1.raw"},
		{"", "", 512, "st:100/vm-100-disk-2.raw"},
		{"qcow2", "vm-100-data.qcow2", 1024, "st:100/vm-100-data.qcow2"},
		{"subvol", "", 0, "st:100/subvol-100-disk-3.subvol"},
		{"raw", "", 1024, "st:101/vm-101-disk-0.raw"},
	}
	for _, tt := range tests {
		vmid := 100
		if strings.HasPrefix(tt.wantVolid, "st:101") {
			vmid = 101
		}
		volid, err := d.Alloc(ctx, vmid, tt.format, tt.name, tt.kib)
		if err != nil || volid != tt.wantVolid {
			t.Fatalf("Alloc(%d,%q,%q,%d) = %q, %v; want %q", vmid, tt.format, tt.name, tt.kib, volid, err, tt.wantVolid)
		}
	}
	p := filepath.Join(root, "images/100/vm-100-disk-0.qcow2")
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("image mode = %v, %v", st, err)
	}
	// preallocation=metadata (PVE's qcow2 default) is visible in qemu-img info.
	out, _ := exec.Command(DefaultQemuImg, "info", p).CombinedOutput()
	if !strings.Contains(string(out), "virtual size: 1 MiB") {
		t.Errorf("qemu-img info: %s", out)
	}

	for _, bad := range []struct {
		format, name string
		kib          uint64
		err          string
	}{
		{"qcow2", "vm-100-disk-0.qcow2", 1024, "already exists"},
		{"raw", "vm-100-x.qcow2", 1024, "wrong extension for format"},
		{"raw", "vm-999-x.raw", 1024, "should be 'vm-100-*'"},
		{"subvol", "", 10, "does not support subvol quotas"},
		{"raw", "vm-100-../x.raw", 1024, "unable to parse volume filename"},
	} {
		if _, err := d.Alloc(ctx, 100, bad.format, bad.name, bad.kib); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("Alloc(%q,%q) error = %v; want %q", bad.format, bad.name, err, bad.err)
		}
	}

	// Other content and a stray file.
	os.WriteFile(filepath.Join(root, "template/iso/debian.iso"), []byte("iso!"), 0o644)
	os.WriteFile(filepath.Join(root, "template/iso/readme.txt"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "template/iso/.hidden.iso"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "template/cache/debian-12.tar.zst"), []byte("t"), 0o644)
	bk := "vzdump-qemu-100-2024_01_02-03_04_05.vma.zst"
	os.WriteFile(filepath.Join(root, "dump", bk), []byte("backup"), 0o644)
	os.WriteFile(filepath.Join(root, "dump", bk+".notes"), []byte("first line\nsecond"), 0o644)
	os.WriteFile(filepath.Join(root, "dump", bk+".protected"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "dump", "vzdump-lxc-101-2024_01_02-03_04_05.tar.gz"), []byte("b"), 0o644)
	os.WriteFile(filepath.Join(root, "snippets/user.yaml"), []byte("#cloud-config\n"), 0o644)
	// A qcow2 named .raw lists as raw (qemu-img -f raw reads it as raw).
	exec.Command(DefaultQemuImg, "create", "-f", "qcow2", filepath.Join(root, "images/101/vm-101-disk-1.qcow2"), "1M").Run()
	os.WriteFile(filepath.Join(root, "images/101/vm-101-disk-1.qcow2.tmp"), nil, 0o644)

	all, err := d.List(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	byID := map[string]VolumeInfo{}
	for _, v := range all {
		ids = append(ids, v.VolID+"="+v.Content+"/"+v.Format)
		byID[v.VolID] = v
	}
	want := "st:100/subvol-100-disk-3.subvol=images/subvol st:100/vm-100-data.qcow2=images/qcow2 st:100/vm-100-disk-0.qcow2=images/qcow2 st:100/vm-100-disk-1.raw=images/raw st:100/vm-100-disk-2.raw=images/raw st:101/vm-101-disk-0.raw=images/raw st:101/vm-101-disk-1.qcow2=images/qcow2 st:backup/vzdump-lxc-101-2024_01_02-03_04_05.tar.gz=backup/tar.gz st:backup/" + bk + "=backup/vma.zst st:iso/debian.iso=iso/iso st:snippets/user.yaml=snippets/snippet st:vztmpl/debian-12.tar.zst=vztmpl/tzst"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("List =\n%s\nwant\n%s", got, want)
	}
	if v := byID["st:100/vm-100-disk-1.raw"]; v.Size != 2048*1024 || v.VMID != 100 || v.Used == nil || v.CTime == 0 {
		t.Errorf("raw image info = %+v", v)
	}
	b := byID["st:backup/"+bk]
	wantCtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local).Unix()
	if b.Notes != "first line" || !b.Protected || b.VMID != 100 || b.Subtype != "qemu" || b.CTime != wantCtime || b.Size != 6 {
		t.Errorf("backup info = %+v", b)
	}
	if v := byID["st:iso/debian.iso"]; v.Size != 4 {
		t.Errorf("iso info = %+v", v)
	}

	// Filters: vmid drops iso/vztmpl and other owners; content restricts.
	vm101, _ := d.List(ctx, ListOptions{VMID: 101})
	ids = ids[:0]
	for _, v := range vm101 {
		ids = append(ids, v.VolID)
	}
	if got := strings.Join(ids, " "); got != "st:101/vm-101-disk-0.raw st:101/vm-101-disk-1.qcow2 st:backup/vzdump-lxc-101-2024_01_02-03_04_05.tar.gz st:snippets/user.yaml" {
		t.Errorf("List(vmid 101) = %s", got)
	}
	d.opt.IsContainer = func(vmid int) bool { return vmid == 101 }
	rd, _ := d.List(ctx, ListOptions{Content: []string{"rootdir"}})
	if len(rd) != 2 || rd[0].Content != "rootdir" {
		t.Errorf("List(rootdir) = %+v", rd)
	}
	d.opt.IsContainer = nil

	// Free.
	if err := d.Free(ctx, "backup/"+bk); !errors.Is(err, ErrProtected) {
		t.Errorf("Free(protected) = %v", err)
	}
	for _, vn := range []string{"100/vm-100-disk-0.qcow2", "100/subvol-100-disk-3.subvol", "100/vm-100-disk-0.qcow2"} {
		if err := d.Free(ctx, vn); err != nil {
			t.Errorf("Free(%s) = %v", vn, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "images/100/vm-100-disk-0.qcow2")); !os.IsNotExist(err) {
		t.Errorf("image still there: %v", err)
	}
	// After freeing disk-0 the next free number is 0 again.
	if volid, err := d.Alloc(ctx, 100, "raw", "", 64); err != nil || volid != "st:100/vm-100-disk-0.raw" {
		t.Errorf("re-Alloc = %q, %v", volid, err)
	}
	os.Remove(filepath.Join(root, "images/101/vm-101-disk-1.qcow2.tmp"))
	for _, vn := range []string{"101/vm-101-disk-0.raw", "101/vm-101-disk-1.qcow2"} {
		d.Free(ctx, vn)
	}
	if _, err := os.Stat(filepath.Join(root, "images/101")); !os.IsNotExist(err) {
		t.Errorf("empty owner dir kept: %v", err)
	}
}

func TestSymlinkSafety(t *testing.T) {
	needQemuImg(t)
	ctx := context.Background()
	d, root := newTestDir(t, "")
	if err := d.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	target := filepath.Join(outside, "victim")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.MkdirAll(filepath.Join(root, "images/100"), 0o755)
	// A symlinked image is unlinked, never its target.
	os.Symlink(target, filepath.Join(root, "images/100/vm-100-disk-5.raw"))
	if err := d.Free(ctx, "100/vm-100-disk-5.raw"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Errorf("symlink target touched: %q, %v", b, err)
	}
	// Free removed the emptied owner directory, as PVE's rmdir does.
	if _, err := os.Stat(filepath.Join(root, "images/100")); !os.IsNotExist(err) {
		t.Errorf("owner dir kept: %v", err)
	}
	// A dangling symlink at the allocation path is refused, not followed.
	os.MkdirAll(filepath.Join(root, "images/100"), 0o755)
	os.Symlink(filepath.Join(outside, "new"), filepath.Join(root, "images/100/vm-100-disk-6.raw"))
	if _, err := d.Alloc(ctx, 100, "raw", "vm-100-disk-6.raw", 64); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Alloc over dangling symlink = %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Errorf("file created through symlink")
	}
	for _, vn := range []string{"../x.raw", "/etc/passwd", "snippets/..", "iso/../../x.iso", "100/../../x.raw", "100/vm-100-disk-0.raw/../../../x"} {
		if p, _, err := d.Path(vn); err == nil {
			t.Errorf("Path(%q) = %q; want error", vn, p)
		}
		if err := d.Free(ctx, vn); err == nil {
			t.Errorf("Free(%q) succeeded", vn)
		}
	}
	if _, _, err := d.VolumePath("other:iso/a.iso"); err == nil || !strings.Contains(err.Error(), "storage ID mismatch") {
		t.Errorf("VolumePath(other) = %v", err)
	}
}

func TestStatus(t *testing.T) {
	d, _ := newTestDir(t, "")
	ctx := context.Background()
	if err := d.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(ctx)
	if err != nil || !st.Active || st.Total == 0 || st.Avail > st.Total || st.Used > st.Total {
		t.Errorf("Status = %+v, %v", st, err)
	}
	in := d.Info(ctx, "pve1")
	if !in.Enabled || !in.Active || in.Type != "dir" {
		t.Errorf("Info = %+v", in)
	}
	// is_mountpoint with the path listed in the mounts file counts as mounted.
	d2, root := newTestDir(t, "\tis_mountpoint 1\n")
	os.MkdirAll(root, 0o755)
	mounts := filepath.Join(t.TempDir(), "mounts")
	real, _ := filepath.EvalSymlinks(root)
	os.WriteFile(mounts, []byte("/dev/sda1 "+strings.ReplaceAll(real, " ", `\040`)+" ext4 rw 0 0\n"), 0o644)
	d2.opt.MountsFile = mounts
	if st, err := d2.Status(ctx); err != nil || !st.Active {
		t.Errorf("Status mounted = %+v, %v", st, err)
	}
}

func TestQemuImgTimeout(t *testing.T) {
	needQemuImg(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := QemuImg{}
	if err := q.Create(ctx, "raw", 64, filepath.Join(t.TempDir(), "x.raw"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with cancelled ctx = %v", err)
	}
}

func TestPreallocationOpt(t *testing.T) {
	tests := []struct{ set, fmt, want, err string }{
		{"", "qcow2", "metadata", ""}, {"", "raw", "off", ""}, {"metadata", "raw", "off", ""},
		{"full", "raw", "full", ""}, {"falloc", "qcow2", "falloc", ""}, {"", "vmdk", "", ""},
		{"bogus", "qcow2", "", "preallocation mode 'bogus' not supported by format 'qcow2'"},
	}
	for _, tt := range tests {
		got, err := PreallocationOpt(tt.set, tt.fmt)
		if got != tt.want || (err == nil) != (tt.err == "") {
			t.Errorf("PreallocationOpt(%q,%q) = %q, %v", tt.set, tt.fmt, got, err)
		}
	}
}
