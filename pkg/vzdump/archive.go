package vzdump

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vma"
)

// Config blob and device names inside PVE's VMA archives.
const (
	ConfigName   = "qemu-server.conf"
	FirewallName = "qemu-server.fw"
)

// nopCloser closes nothing (uncompressed output).
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// newCompressor wraps w in the compressor of compress; threads is the
// zstd option (0: half of the CPUs, N: N threads). Close flushes the
// compressed stream but does not close w.
func newCompressor(w io.Writer, compress string, threads int) (io.WriteCloser, error) {
	if _, err := CompressionSuffix(compress); err != nil {
		return nil, err
	}
	switch compress {
	case "zstd":
		if threads <= 0 {
			threads = max(1, runtime.NumCPU()/2)
		}
		enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(threads), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return enc, nil
	case "gzip":
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	}
	return nopCloser{w}, nil
}

// Archive is an open VMA archive being read: decompressed by its name's
// suffix (.zst, .gz, none).
type Archive struct {
	*vma.Reader
	f     *os.File
	close func()
}

// OpenArchive opens the VMA archive at path and reads its header.
func OpenArchive(path string) (*Archive, error) {
	return OpenArchiveContext(context.Background(), path, 0)
}

// ctxReader fails reads once ctx has ended and keeps to a rate limit.
type ctxReader struct {
	ctx   context.Context
	r     io.Reader
	limit *rateLimiter
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, context.Cause(c.ctx)
	}
	n, err := c.r.Read(p)
	if werr := c.limit.wait(c.ctx, int64(n)); werr != nil {
		return n, werr
	}
	return n, err
}

// OpenArchiveContext is OpenArchive whose reads (header and Extract) fail
// once ctx has ended; readLimit limits reading the archive file to that
// many bytes per second (0: no limit).
func OpenArchiveContext(ctx context.Context, path string, readLimit int64) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open backup archive: %w", err)
	}
	a := &Archive{f: f, close: func() {}}
	readBuf := 1 << 20
	if readLimit > 0 {
		readBuf = 64 << 10 // keep the limit smooth
	}
	var r io.Reader = bufio.NewReaderSize(ctxReader{ctx, f, newRateLimiter(readLimit)}, readBuf)
	switch {
	case strings.HasSuffix(path, ".vma.zst"):
		dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("archive '%s': zstd: %w", path, err)
		}
		a.close = dec.Close
		r = dec
	case strings.HasSuffix(path, ".vma.gz"):
		gz, err := gzip.NewReader(r)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("archive '%s': gzip: %w", path, err)
		}
		a.close = func() { gz.Close() }
		r = gz
	case strings.HasSuffix(path, ".vma.lzo"):
		f.Close()
		return nil, fmt.Errorf("archive '%s': not implemented: lzo compressed archives", path)
	case strings.HasSuffix(path, ".vma"):
	default:
		f.Close()
		return nil, fmt.Errorf("archive '%s': not a VMA archive (.vma, .vma.zst, .vma.gz)", path)
	}
	rd, err := vma.NewReader(r)
	if err != nil {
		a.close()
		f.Close()
		return nil, fmt.Errorf("archive '%s': %w", path, err)
	}
	a.Reader = rd
	return a, nil
}

// Close releases the archive.
func (a *Archive) Close() error {
	a.close()
	return a.f.Close()
}

// Config returns the config blob name ("" if missing).
func (a *Archive) Config(name string) ([]byte, bool) {
	for _, c := range a.Configs() {
		if c.Name == name {
			return c.Data, true
		}
	}
	return nil, false
}

// ExtractConfig reads only the header of the archive at path and returns
// its VM config (qemu-server.conf), as PVE's extract_vzdump_config.
func ExtractConfig(path string) (string, error) {
	a, err := OpenArchive(path)
	if err != nil {
		return "", err
	}
	defer a.Close()
	data, ok := a.Config(ConfigName)
	if !ok {
		return "", fmt.Errorf("archive '%s' has no %s", path, ConfigName)
	}
	return string(data), nil
}

// DiskMap is a "#qmdump#map:<virtdev>:<devname>:<storage>:<format>:" line
// of a backed-up config: which archive device holds which drive, and
// where and in which format it was stored.
type DiskMap struct {
	VirtDev, DevName, Storage, Format string
}

// ParseDiskMaps returns the map lines of a backed-up config in order.
func ParseDiskMaps(conf string) ([]DiskMap, error) {
	var out []DiskMap
	for _, line := range strings.Split(conf, "\n") {
		rest, ok := strings.CutPrefix(line, "#qmdump#map:")
		if !ok {
			continue
		}
		f := strings.Split(rest, ":")
		if len(f) != 5 || f[4] != "" || f[0] == "" || f[1] == "" || strings.ContainsAny(rest, " \t") {
			return nil, fmt.Errorf("bad disk map line '%s'", line)
		}
		out = append(out, DiskMap{VirtDev: f[0], DevName: f[1], Storage: f[2], Format: f[3]})
	}
	return out, nil
}

// BackupVolume is a backup archive named by a volume ID or a path.
type BackupVolume struct {
	Path    string // file system path
	Storage string // storage ID; "" for an absolute path
	// OwnerVMID is the guest the archive belongs to by its name (0 if
	// the name does not say).
	OwnerVMID int
}

// ResolveBackupVolume maps a backup volume ID ("local:backup/vzdump-...")
// or an absolute path to the archive file; other volume types are
// refused, naming the volume.
func ResolveBackupVolume(host *storage.Host, volume string) (BackupVolume, error) {
	if filepath.IsAbs(volume) {
		bv := BackupVolume{Path: filepath.Clean(volume)}
		if info, err := ParseArchiveName(filepath.Base(volume), nil); err == nil {
			bv.OwnerVMID = info.VMID
		}
		return bv, nil
	}
	sid, volname, err := storage.ParseVolumeID(volume)
	if err != nil {
		return BackupVolume{}, fmt.Errorf("unable to parse volume ID '%s': %w", volume, err)
	}
	dir, err := host.Storage(sid)
	if err != nil {
		return BackupVolume{}, err
	}
	p, v, err := dir.Path(volname)
	if err != nil {
		return BackupVolume{}, err
	}
	if v.VType != storage.VTypeBackup {
		return BackupVolume{}, fmt.Errorf("volume '%s' is not a backup archive (content type '%s')", volume, v.VType)
	}
	bv := BackupVolume{Path: p, Storage: sid, OwnerVMID: v.VMID}
	if bv.OwnerVMID == 0 {
		if info, err := ParseArchiveName(v.Name, nil); err == nil {
			bv.OwnerVMID = info.VMID
		}
	}
	return bv, nil
}
