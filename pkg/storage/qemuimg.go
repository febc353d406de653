package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultQemuImg is the qemu-img binary PVE runs.
const DefaultQemuImg = "/usr/bin/qemu-img"

// ImageInfo is the part of `qemu-img info --output=json` PVE uses.
type ImageInfo struct {
	Filename        string `json:"filename,omitempty"`
	VirtualSize     int64  `json:"virtual-size"`
	ActualSize      int64  `json:"actual-size"`
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename,omitempty"`
	// FormatSpecific is the format's own block: a qcow2's external data
	// file, a vmdk's extents.
	FormatSpecific *FormatSpecific `json:"format-specific,omitempty"`
	// Children are the image's child nodes, as QEMU 8.0 and later list
	// them: "file" (the image file itself), a qcow2's "data-file", a
	// descriptor vmdk's "extents.N". Older qemu-img lists none.
	Children []ImageChild `json:"children,omitempty"`
}

// FormatSpecific is the "format-specific" block of qemu-img info.
type FormatSpecific struct {
	Type string             `json:"type"` // the format: qcow2, vmdk, ...
	Data FormatSpecificData `json:"data"`
}

// FormatSpecificData holds the format-specific fields PVE looks at.
type FormatSpecificData struct {
	DataFile string        `json:"data-file,omitempty"` // qcow2: external data file
	Extents  []ImageExtent `json:"extents,omitempty"`   // vmdk: the extent files
}

// ImageExtent is one extent of a vmdk image.
type ImageExtent struct {
	Filename    string `json:"filename"`
	Format      string `json:"format,omitempty"` // "", SPARSE, FLAT, ...
	VirtualSize int64  `json:"virtual-size"`
}

// ImageChild is one child node of an image.
type ImageChild struct {
	Name string    `json:"name"` // "file", "data-file", "extents.0", ...
	Info ImageInfo `json:"info"`
}

// ErrWrongFormat is returned (wrapped) by QemuImgInfo when qemu-img says the
// image is not in the requested format ("Image is not in qcow2 format").
var ErrWrongFormat = errors.New("image is not in the expected format")

// QemuImg runs qemu-img. The zero value runs DefaultQemuImg with no timeout
// beyond the caller's context.
type QemuImg struct {
	Path string
	// Timeout bounds each run in addition to the context; 0 means none.
	Timeout time.Duration
}

func (q QemuImg) run(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	stdout, stderr, err := q.output(ctx, timeout, args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout, nil
	case errors.As(err, &ee):
		msg := strings.TrimSpace(string(stderr))
		if msg == "" {
			msg = err.Error()
		}
		return stdout, fmt.Errorf("qemu-img %s: %s", args[0], msg)
	}
	return nil, fmt.Errorf("qemu-img %s: %w", args[0], err)
}

// output runs qemu-img with args and returns what it wrote to stdout and
// stderr. The error is the context's when it ended the run (timeout 0:
// q.Timeout), else the command's.
func (q QemuImg) output(ctx context.Context, timeout time.Duration, args ...string) (stdout, stderr []byte, err error) {
	bin := q.Path
	if bin == "" {
		bin = DefaultQemuImg
	}
	if timeout == 0 {
		timeout = q.Timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, errOut.Bytes(), ctxErr
	}
	return out.Bytes(), errOut.Bytes(), err
}

// Create runs `qemu-img create [-o preallocation=P] -f FMT PATH SIZEK`, the
// command line of PVE's qemu_img_create (size in KiB).
func (q QemuImg) Create(ctx context.Context, format string, sizeKiB uint64, path, prealloc string) error {
	args := []string{"create"}
	if prealloc != "" {
		args = append(args, "-o", "preallocation="+prealloc)
	}
	args = append(args, "-f", format, path, strconv.FormatUint(sizeKiB, 10)+"K")
	if _, err := q.run(ctx, 0, args...); err != nil {
		return fmt.Errorf("unable to create image: %w", err)
	}
	return nil
}

// Info runs `qemu-img info --output=json PATH [-f FMT]`.
func (q QemuImg) Info(ctx context.Context, path, format string) (*ImageInfo, error) {
	args := []string{"info", "--output=json", path}
	if format != "" {
		args = append(args, "-f", format)
	}
	out, err := q.run(ctx, 0, args...)
	if err != nil {
		if strings.Contains(err.Error(), "Image is not in ") {
			return nil, fmt.Errorf("%w: %v", ErrWrongFormat, err)
		}
		return nil, err
	}
	var info ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("could not parse qemu-img info command output for '%s': %v", path, err)
	}
	if format != "" && info.Format != format {
		return nil, fmt.Errorf("qemu-img bug: queried format does not match format in result '%s ne %s'", format, info.Format)
	}
	return &info, nil
}

// checkedFormats are the formats PVE asks qemu-img about by name
// (@checked_qemu_img_formats); other formats are read as raw.
var checkedFormats = map[string]bool{"raw": true, "qcow": true, "qcow2": true, "qed": true, "vmdk": true, "cloop": true}

// UntrustedInfo is PVE's file_size_info with $untrusted set, for a file
// from outside (an upload): it runs `qemu-img info` on path (format "" or
// "auto-detect": qemu-img probes it) and fails unless the image is
// self-contained (CheckUntrusted) and of the format asked. Errors carry
// PVE's messages; when qemu-img prints nothing on stdout, its stderr is the
// error, as in PVE.
func (q QemuImg) UntrustedInfo(ctx context.Context, path, format string) (*ImageInfo, error) {
	if format == "auto-detect" {
		format = ""
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		extra := ""
		var lst unix.Stat_t
		if unix.Lstat(path, &lst) == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK {
			extra = " - dangling symlink?"
		}
		return nil, fmt.Errorf("failed to stat '%s'%s", path, extra)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if format != "" && format != "subvol" {
			return nil, fmt.Errorf("expected format '%s', but '%s' is a directory", format, path)
		}
		return &ImageInfo{Format: "subvol"}, nil
	}
	if format == "subvol" {
		return nil, fmt.Errorf("expected format '%s', but '%s' is not a directory", format, path)
	}
	if format != "" && !checkedFormats[format] {
		format = "raw" // PVE warns "falling back to 'raw' from unknown format"
	}
	args := []string{"info", "--output=json", path}
	if format != "" {
		args = append(args, "-f", format)
	}
	stdout, stderr, err := q.output(ctx, 0, args...)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("failed to query file information with qemu-img: %w", ctxErr)
	}
	if len(bytes.TrimSpace(stdout)) == 0 {
		if msg := strings.TrimSpace(string(stderr)); msg != "" {
			return nil, errors.New(msg)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to query file information with qemu-img: %w", err)
		}
		return nil, errors.New("failed to query file information with qemu-img")
	}
	var info ImageInfo
	if err := json.Unmarshal(stdout, &info); err != nil {
		return nil, fmt.Errorf("could not parse qemu-img info command output for '%s' - %v", path, err)
	}
	if err := CheckUntrusted(path, &info); err != nil {
		return nil, err
	}
	if info.Format == "" || strings.ContainsAny(info.Format, " \t\n\v\f\r") {
		return nil, fmt.Errorf("format '%s' includes whitespace", info.Format)
	}
	if format != "" && info.Format != format {
		return nil, fmt.Errorf("qemu-img bug: queried format does not match format in result '%s ne %s'", format, info.Format)
	}
	return &info, nil
}

// CheckUntrusted is the check PVE's file_size_info makes of an untrusted
// image's qemu-img info: the image may not refer to other files, since
// reading it (a VM's disk, an import) would then read those files. Refused,
// with PVE's messages (path names the image): a qcow2 external data file;
// a vmdk with more than one extent or child node; a backing file (any
// format).
//
// Beyond PVE: a vmdk whose one extent is another file than the image (a
// descriptor naming, say, "/etc/shadow" as its flat extent) is refused as
// well. QEMU 8.0 and later list such an extent as a second child node, so
// PVE refuses it there by the children count; older qemu-img lists no
// children, and this keeps the check as strict with them.
func CheckUntrusted(path string, info *ImageInfo) error {
	if fs := info.FormatSpecific; fs != nil {
		switch fs.Type {
		case "qcow2":
			if fs.Data.DataFile != "" {
				return fmt.Errorf("%s: 'data-file' references are not allowed!", path)
			}
		case "vmdk":
			ext := fs.Data.Extents
			if len(info.Children) > 1 || len(ext) > 1 || len(ext) == 1 && ext[0].Filename != info.Filename {
				return fmt.Errorf("%s: multiple children or extents are not allowed!", path)
			}
		}
	}
	if info.BackingFilename != "" {
		return fmt.Errorf("backing file not allowed for untrusted image '%s'!", path)
	}
	return nil
}
