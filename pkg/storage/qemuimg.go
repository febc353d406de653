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
)

// DefaultQemuImg is the qemu-img binary PVE runs.
const DefaultQemuImg = "/usr/bin/qemu-img"

// ImageInfo is the part of `qemu-img info --output=json` PVE uses.
type ImageInfo struct {
	VirtualSize     int64  `json:"virtual-size"`
	ActualSize      int64  `json:"actual-size"`
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename,omitempty"`
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
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("qemu-img %s: %w", args[0], ctxErr)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), fmt.Errorf("qemu-img %s: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
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
