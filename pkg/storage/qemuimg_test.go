package storage

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// qemuImg runs qemu-img with args in dir, failing the test on an error.
func qemuImg(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(DefaultQemuImg, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v: %s", args, err, out)
	}
}

// TestUntrustedInfo runs real qemu-img on images an upload could carry.
func TestUntrustedInfo(t *testing.T) {
	needQemuImg(t)
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	qemuImg(t, dir, "create", "-f", "raw", "plain.raw", "1M")
	qemuImg(t, dir, "create", "-f", "qcow2", "plain.qcow2", "1M")
	qemuImg(t, dir, "create", "-f", "qcow2", "-b", p("plain.qcow2"), "-F", "qcow2", "backed.qcow2")
	qemuImg(t, dir, "create", "-f", "qcow2", "-o", "data_file="+p("data.raw"), "datafile.qcow2", "1M")
	qemuImg(t, dir, "create", "-f", "vmdk", "sparse.vmdk", "1M")
	qemuImg(t, dir, "create", "-f", "vmdk", "-o", "subformat=streamOptimized", "stream.vmdk", "1M")
	// Three extents of at most 2 GiB (sparse files: nothing is written).
	qemuImg(t, dir, "create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "split.vmdk", "5G")
	qemuImg(t, dir, "create", "-f", "vmdk", "-o", "subformat=monolithicFlat", "flat.vmdk", "1M")
	host := "RW 8 FLAT \"/etc/hostname\" 0\n"
	if err := os.WriteFile(p("evil.vmdk"), []byte("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"+
		"createType=\"monolithicFlat\"\n\n"+host+"\nddb.virtualHWVersion = \"4\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("nowhere"), p("dangling.raw")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p("subdir"), 0o700); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, file, format string
		wantFormat         string // accepted as this format
		wantErr            string // or refused with this message (exact, or a prefix ending in "...")
	}{
		{"raw", "plain.raw", "raw", "raw", ""},
		{"raw probed (an ISO upload)", "plain.raw", "", "raw", ""},
		{"auto-detect", "plain.raw", "auto-detect", "raw", ""},
		{"unknown format read as raw", "plain.raw", "iso", "raw", ""},
		{"qcow2", "plain.qcow2", "qcow2", "qcow2", ""},
		{"vmdk monolithicSparse", "sparse.vmdk", "vmdk", "vmdk", ""},
		{"vmdk streamOptimized", "stream.vmdk", "vmdk", "vmdk", ""},
		{"qcow2 with a backing file", "backed.qcow2", "qcow2", "",
			"backing file not allowed for untrusted image '" + p("backed.qcow2") + "'!"},
		{"probed qcow2 with a backing file", "backed.qcow2", "", "",
			"backing file not allowed for untrusted image '" + p("backed.qcow2") + "'!"},
		{"qcow2 with a data file", "datafile.qcow2", "qcow2", "",
			p("datafile.qcow2") + ": 'data-file' references are not allowed!"},
		{"vmdk of three extents", "split.vmdk", "vmdk", "",
			p("split.vmdk") + ": multiple children or extents are not allowed!"},
		{"vmdk whose extent is another file", "flat.vmdk", "vmdk", "",
			p("flat.vmdk") + ": multiple children or extents are not allowed!"},
		{"vmdk naming a host file", "evil.vmdk", "", "",
			p("evil.vmdk") + ": multiple children or extents are not allowed!"},
		{"wrong format", "plain.raw", "qcow2", "", "qemu-img: Could not open '" + p("plain.raw") + "': Image is not in qcow2 format"},
		{"missing", "gone.raw", "raw", "", "failed to stat '" + p("gone.raw") + "'"},
		{"dangling symlink", "dangling.raw", "raw", "", "failed to stat '" + p("dangling.raw") + "' - dangling symlink?"},
		{"directory", "subdir", "raw", "", "expected format 'raw', but '" + p("subdir") + "' is a directory"},
		{"not a directory", "plain.raw", "subvol", "", "expected format 'subvol', but '" + p("plain.raw") + "' is not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			info, err := QemuImg{}.UntrustedInfo(context.Background(), p(tt.file), tt.format)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("UntrustedInfo(%s, %q) error = %v; want %q", tt.file, tt.format, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UntrustedInfo(%s, %q) error = %v; want none", tt.file, tt.format, err)
			}
			if info.Format != tt.wantFormat || info.VirtualSize != 1<<20 {
				t.Errorf("UntrustedInfo(%s, %q) = format %s, size %d; want %s, 1 MiB", tt.file, tt.format, info.Format, info.VirtualSize, tt.wantFormat)
			}
		})
	}

	// Info itself reads the new fields; the trusted path refuses nothing.
	info, err := QemuImg{}.Info(context.Background(), p("datafile.qcow2"), "qcow2")
	if err != nil || info.FormatSpecific == nil || info.FormatSpecific.Type != "qcow2" || info.FormatSpecific.Data.DataFile != p("data.raw") {
		t.Errorf("Info(datafile.qcow2) = %+v, %v; want its data file", info, err)
	}
	info, err = QemuImg{}.Info(context.Background(), p("split.vmdk"), "vmdk")
	if err != nil || info.FormatSpecific == nil || len(info.FormatSpecific.Data.Extents) != 3 ||
		!strings.HasSuffix(info.FormatSpecific.Data.Extents[0].Filename, "split-s001.vmdk") {
		t.Errorf("Info(split.vmdk) = %+v, %v; want three extents", info, err)
	}
	info, err = QemuImg{}.Info(context.Background(), p("backed.qcow2"), "qcow2")
	if err != nil || info.BackingFilename != p("plain.qcow2") || info.Filename != p("backed.qcow2") {
		t.Errorf("Info(backed.qcow2) = %+v, %v; want its backing file", info, err)
	}
}

// TestCheckUntrusted decodes qemu-img info output as QEMU 8.0 and later
// print it (with children) and checks it.
func TestCheckUntrusted(t *testing.T) {
	const path = "/up/x"
	for _, tt := range []struct {
		name, json, wantErr string
	}{
		{"raw", `{"filename": "/up/x", "format": "raw", "virtual-size": 1048576,
			"children": [{"name": "file", "info": {"filename": "/up/x", "format": "file", "virtual-size": 1048576}}]}`, ""},
		{"vmdk monolithicSparse: the file child only", `{"filename": "/up/x", "format": "vmdk",
			"format-specific": {"type": "vmdk", "data": {"create-type": "monolithicSparse",
				"extents": [{"filename": "/up/x", "format": "", "virtual-size": 1048576}]}},
			"children": [{"name": "file", "info": {"filename": "/up/x", "format": "file"}}]}`, ""},
		{"vmdk descriptor: an extents child", `{"filename": "/up/x", "format": "vmdk",
			"format-specific": {"type": "vmdk", "data": {"create-type": "monolithicFlat",
				"extents": [{"filename": "/up/x", "format": "FLAT"}]}},
			"children": [{"name": "file", "info": {"filename": "/up/x"}}, {"name": "extents.0", "info": {"filename": "/etc/shadow"}}]}`,
			"/up/x: multiple children or extents are not allowed!"},
		{"vmdk, two extents", `{"filename": "/up/x", "format": "vmdk",
			"format-specific": {"type": "vmdk", "data": {"extents": [{"filename": "/up/x-s001.vmdk"}, {"filename": "/up/x-s002.vmdk"}]}}}`,
			"/up/x: multiple children or extents are not allowed!"},
		{"qcow2 data file", `{"filename": "/up/x", "format": "qcow2",
			"format-specific": {"type": "qcow2", "data": {"compat": "1.1", "data-file": "/dev/sda", "data-file-raw": true}}}`,
			"/up/x: 'data-file' references are not allowed!"},
		{"qcow2 with a backing file", `{"filename": "/up/x", "format": "qcow2", "backing-filename": "/var/lib/vz/images/100/base.qcow2",
			"format-specific": {"type": "qcow2", "data": {"compat": "1.1"}}}`,
			"backing file not allowed for untrusted image '/up/x'!"},
		{"qcow2 data file checked before the backing file", `{"filename": "/up/x", "format": "qcow2", "backing-filename": "b",
			"format-specific": {"type": "qcow2", "data": {"data-file": "d"}}}`,
			"/up/x: 'data-file' references are not allowed!"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var info ImageInfo
			if err := json.Unmarshal([]byte(tt.json), &info); err != nil {
				t.Fatal(err)
			}
			err := CheckUntrusted(path, &info)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckUntrusted = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("CheckUntrusted = %v; want %q", err, tt.wantErr)
			}
		})
	}
}
