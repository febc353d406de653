package vzdump

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vma"
)

// progressInterval is how often progress lines are logged at most.
const progressInterval = 3 * time.Second

// writeArchive produces the archive in tmpArchive: it gets a raw
// point-in-time image of each disk (block jobs or direct reads, by mode)
// and packs the config and the images into the compressed VMA stream.
func (g *guestRun) writeArchive(ctx context.Context, tmpArchive string) (err error) {
	g.archiveID = uuid.New()
	begin := time.Now()
	sources, err := g.prepareSources(ctx)
	if err != nil {
		return err
	}
	configs := []vma.Config{{Name: ConfigName, Data: []byte(assembleConfig(string(g.raw), g.disks, func(s string) { g.log.info("%s", s) }))}}
	if fw, ferr := g.e.Config.ReadFile("firewall/" + strconv.Itoa(g.vmid) + ".fw"); ferr == nil {
		configs = append(configs, vma.Config{Name: FirewallName, Data: fw})
	} else if !errors.Is(ferr, fs.ErrNotExist) {
		return fmt.Errorf("read firewall config: %w", ferr)
	}
	devices := make([]vma.Device, len(g.disks))
	for i, d := range g.disks {
		devices[i] = vma.Device{ID: i + 1, Name: d.devName(), Size: d.Size}
	}

	f, err := os.OpenFile(tmpArchive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	comp, err := newCompressor(bw, g.opts.Compress, g.opts.Zstd)
	if err != nil {
		return err
	}
	w, err := vma.NewWriter(comp, g.archiveID, g.e.now(), configs, devices)
	if err != nil {
		return fmt.Errorf("write VMA header: %w", err)
	}
	st := &packStats{start: begin, last: begin}
	for _, d := range g.disks {
		st.total += d.Size
	}
	// bwlimit limits reading the disks: QEMU's block jobs (their speed)
	// or, for disks read directly, the packing below.
	limit := newRateLimiter(0)
	if !g.running || g.mode == "stop" {
		limit = newRateLimiter(g.opts.BwLimit * 1024)
	}
	for i, d := range g.disks {
		if err := g.packDevice(ctx, w, devices[i].ID, sources[i], d.Size, st, limit); err != nil {
			return fmt.Errorf("%s: %w", d.Key, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("finish VMA stream: %w", err)
	}
	if err := comp.Close(); err != nil {
		return fmt.Errorf("finish compression: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("write archive: %w", cerr)
	}
	st.report(g.log, true)
	dur := time.Since(st.start)
	if st.zero > 0 {
		pct := int64(0)
		if st.total > 0 {
			pct = st.zero * 100 / st.total
		}
		g.log.info("backup is sparse: %s (%d%%) total zero data", renderBytes(float64(st.zero)), pct)
	}
	if dur >= time.Second {
		g.log.info("transferred %s in %d seconds (%s)", renderBytes(float64(st.done)), int(dur.Seconds()), rate(st.done, dur))
	} else {
		g.log.info("transferred %s in <1 seconds", renderBytes(float64(st.done)))
	}
	return nil
}

// prepareSources returns one raw image file per disk holding the data to
// back up: for a running VM in snapshot or suspend mode a point-in-time
// copy made by QEMU's block jobs, else the disks themselves (raw) or a
// raw conversion of them (other formats).
func (g *guestRun) prepareSources(ctx context.Context) ([]string, error) {
	srcs := make([]string, len(g.disks))
	if g.running && g.mode != "stop" {
		for i, d := range g.disks {
			srcs[i] = filepath.Join(g.tmpDir, d.Key+".raw")
		}
		if len(g.disks) == 0 {
			return srcs, nil
		}
		if g.mode == "suspend" && !g.paused {
			g.log.info("suspending guest")
			g.stopTime = time.Now()
			if err := g.e.VMs.Suspend(ctx, g.vmid); err != nil {
				return nil, fmt.Errorf("suspend VM: %w", err)
			}
			g.resume = true
		}
		err := g.e.copyWithJobs(ctx, g.vmid, backupJobPrefix, g.disks, srcs, g.opts.BwLimit*1024, jobHooks{
			leftover: func(ids []string) {
				g.log.warn("left-over backup job still running inside QEMU - canceled (%s)", strings.Join(ids, ", "))
			},
			starting: func() { g.log.info("starting backup via QMP command") },
			started: func([]string) {
				g.log.info("started backup task '%s'", g.archiveID)
				if g.resume {
					g.resume = false
					g.log.info("resuming VM again after %d seconds", int(time.Since(g.stopTime).Seconds()))
					if err := g.e.VMs.Resume(ctx, g.vmid); err != nil {
						g.log.warn("unable to resume VM: %v", err)
					}
				}
			},
			warn: func(err error) { g.log.warn("%v", err) },
		})
		if err != nil {
			return nil, err
		}
		return srcs, nil
	}
	return g.e.rawImages(ctx, g.disks, g.tmpDir, nil)
}

// qemuImg is the qemu-img binary.
func (e *Engine) qemuImg() string {
	if e.QemuImg.Path != "" {
		return e.QemuImg.Path
	}
	return storage.DefaultQemuImg
}

// imageSize returns an image's virtual size; the image may be open in a
// running QEMU (qemu-img info -U).
func (e *Engine) imageSize(ctx context.Context, path, format string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.qemuImg(), "info", "--output=json", "-U", "-f", format, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("qemu-img info: %s", strings.TrimSpace(stderr.String()+" "+err.Error()))
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize <= 0 {
		return 0, fmt.Errorf("qemu-img info: no virtual size for '%s'", path)
	}
	return info.VirtualSize, nil
}

// convertRaw writes a sparse raw copy of a non-raw disk.
func (e *Engine) convertRaw(ctx context.Context, d disk, dst string) error {
	if err := e.QemuImg.Convert(ctx, d.Format, "raw", d.Path, dst, false); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("read disk '%s': %w", d.Volid, err)
	}
	return nil
}

// packStats counts the data packed so far for the progress lines.
type packStats struct {
	total, done, zero int64
	start, last       time.Time
	lastDone          int64
	lastZero          int64
	lastPct           int64
}

// report logs a progress line (always when final, else at most every
// progressInterval).
func (s *packStats) report(l *guestLog, final bool) {
	now := time.Now()
	if !final && now.Sub(s.last) < progressInterval {
		return
	}
	pct := int64(100)
	if s.total > 0 {
		pct = s.done * 100 / s.total
	}
	if !final && pct == s.lastPct {
		return
	}
	d := now.Sub(s.last)
	read := s.done - s.lastDone
	write := read - (s.zero - s.lastZero)
	l.info("%3d%% (%s of %s) in %s, read: %s, write: %s", pct, renderBytes(float64(s.done)), renderBytes(float64(s.total)),
		renderDuration(now.Sub(s.start)), rate(read, d), rate(write, d))
	s.last, s.lastDone, s.lastZero, s.lastPct = now, s.done, s.zero, pct
}

// packDevice writes the image at path (size bytes) as device id, cluster
// by cluster. Holes of a sparse file are not read (SEEK_DATA); all-zero
// clusters are counted as sparse.
func (g *guestRun) packDevice(ctx context.Context, w *vma.Writer, id int, path string, size int64, st *packStats, limit *rateLimiter) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open disk image: %w", err)
	}
	defer f.Close()
	buf := make([]byte, vma.ClusterSize)
	zero := make([]byte, vma.ClusterSize)
	dataStart := int64(0) // next offset holding data, per SEEK_DATA
	for off, cluster := int64(0), uint64(0); off < size; off, cluster = off+vma.ClusterSize, cluster+1 {
		if cluster%64 == 0 {
			if err := context.Cause(ctx); ctx.Err() != nil {
				return err
			}
			st.report(g.log, false)
		}
		n := min(int64(vma.ClusterSize), size-off)
		if dataStart < off+n && dataStart <= off {
			dataStart = seekData(f, off, size)
		}
		isHole := dataStart >= off+n
		data := buf
		if isHole {
			data = nil // an all-zero cluster
		} else {
			// A file shorter than its virtual size (raw images are
			// rounded up to sectors) reads as zeros past its end.
			got, err := f.ReadAt(buf[:n], off)
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read disk image at %d: %w", off, err)
			}
			clear(buf[got:])
			if err := limit.wait(ctx, n); err != nil {
				return err
			}
		}
		if isHole || bytes.Equal(buf, zero) {
			st.zero += n
		}
		if err := w.WriteCluster(id, cluster, data); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
		st.done += n
	}
	return nil
}

// seekData returns the first offset at or after off holding data, size
// if there is none; off itself if the file system cannot tell.
func seekData(f *os.File, off, size int64) int64 {
	pos, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return size
		}
		return off
	}
	return pos
}
