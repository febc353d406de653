package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Replica import: the target side of storage replication. The source node
// streams a point-in-time raw image of a guest disk; the target writes it
// as the same volume of its own storage, replacing the previous replica
// only once the new one is complete and durable.

const (
	// importChunk is the unit in which a replica stream is read and the
	// granularity at which all-zero data becomes a hole.
	importChunk = 64 << 10
	// importTempPrefix starts the names of an import's temporary files in
	// the image directory; listings skip dot files, and no volume name
	// starts with a dot.
	importTempPrefix = ".pvenode-replica-"
	// staleImport is the age after which the temporary files of an import
	// are taken as left behind by a daemon that died mid-import. A running
	// import touches its raw file at least every importTouch (even while
	// the stream is all zeros), and qemu-img writes the converted file as
	// it goes.
	staleImport = time.Hour
	// importTouch is how often a running import renews its raw file's
	// modification time.
	importTouch = time.Minute
)

// ErrStreamSize is returned (wrapped) by ImportRaw when the stream holds
// fewer or more bytes than the size announced.
var ErrStreamSize = errors.New("replica stream does not match its announced size")

// replicaNameRE is a standard image file name: vm-VMID-NAME.FMT or
// base-VMID-NAME.FMT, in a format ImportRaw can write.
var (
	replicaNameRE = regexp.MustCompile(`^(?:vm|base)-([1-9][0-9]*)-[^/\s]+\.(raw|qcow2|vmdk)$`)
	importTempRE  = regexp.MustCompile(`^\.pvenode-replica-[0-9a-f]{32}(?:\.out)?$`)
)

// checkReplicaVolume checks that volname is a plain image volume of an
// owner's own disk ("VMID/vm-VMID-….FMT"), not a linked clone, a subvol or
// another content type, and returns its path and parsed form.
func (d *Dir) checkReplicaVolume(volname string) (string, *Volume, error) {
	path, v, err := d.Path(volname)
	if err != nil {
		return "", nil, err
	}
	if v.VType != VTypeImages || v.BaseName != "" {
		return "", nil, fmt.Errorf("volume '%s' is not a plain disk image; only images can be imported as replicas", volname)
	}
	m := replicaNameRE.FindStringSubmatch(v.Name)
	if m == nil {
		return "", nil, fmt.Errorf("volume '%s': cannot import a replica as '%s' (want vm-VMID-NAME.raw, .qcow2 or .vmdk)", volname, v.Name)
	}
	owner := strconv.Itoa(v.VMID)
	if m[1] != owner || !strings.HasPrefix(volname, owner+"/") {
		return "", nil, fmt.Errorf("volume '%s': image name does not belong to VM %d", volname, v.VMID)
	}
	return path, v, nil
}

// ImportRaw writes size bytes of raw disk data read from r as the image
// volume volname ("VMID/vm-VMID-disk-N.FMT") of this storage, replacing the
// volume if it exists. This is the receiving half of storage replication
// (PVE's volume_import, with a raw stream).
//
// The data goes to a sparse temporary file in the image's directory:
// all-zero 64 KiB chunks become holes. A raw volume is that file; for
// qcow2 and vmdk, qemu-img converts it into a second temporary file. The
// result is synced and renamed over the volume, so the volume is either the
// old one or the complete new one. r must hold exactly size bytes: a stream
// that ends early or goes on (ErrStreamSize), a read error, a cancelled ctx
// or a failed conversion leave the existing volume untouched and remove the
// temporary files.
func (d *Dir) ImportRaw(ctx context.Context, volname string, size int64, r io.Reader) error {
	return d.importReplica(ctx, volname, size, func(f *os.File, sums []byte) error {
		return writeSparse(ctx, f, size, r, sums)
	})
}

// importReplica runs an import whose data fill writes into the sparse
// temporary file f (size bytes) and the chunk checksums into sums; the
// rest (checks, conversion, sync, rename, checksum file) is common to
// full and delta imports.
func (d *Dir) importReplica(ctx context.Context, volname string, size int64, fill func(f *os.File, sums []byte) error) error {
	path, v, err := d.checkReplicaVolume(volname)
	if err != nil {
		return err
	}
	if !d.Section.HasContent(VTypeImages) {
		return fmt.Errorf("storage '%s' does not support vm images", d.ID)
	}
	if size < 1 {
		return fmt.Errorf("import of '%s' on storage '%s': invalid size %d", volname, d.ID, size)
	}
	if v.Format != "raw" && size%512 != 0 {
		return fmt.Errorf("import of '%s' on storage '%s': size %d is not a multiple of 512 bytes, as a %s image's must be",
			volname, d.ID, size, v.Format)
	}
	if err := d.Activate(ctx); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o740); err != nil {
		return fmt.Errorf("import of '%s' on storage '%s': mkdir %s: %v", volname, d.ID, dir, err)
	}
	if err := checkFreeSpace(d.ID, dir, size); err != nil {
		return err
	}
	removeStaleImports(dir)

	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, importTempPrefix+hex.EncodeToString(rnd[:]))
	out := tmp + ".out"
	defer func() {
		// Both are gone after a success (renamed or no longer needed).
		_ = os.Remove(tmp)
		_ = os.Remove(out)
	}()

	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("import of '%s' on storage '%s': create temporary file: %v", volname, d.ID, err)
	}
	sums := make([]byte, sumCount(size)*sumLen)
	werr := fill(f, sums)
	if werr == nil && v.Format == "raw" {
		werr = finishFile(f)
	}
	if cerr := f.Close(); werr == nil && cerr != nil {
		werr = fmt.Errorf("close %s: %v", tmp, cerr)
	}
	if werr != nil {
		return fmt.Errorf("import of '%s' on storage '%s': %w", volname, d.ID, werr)
	}
	final := tmp
	if v.Format != "raw" {
		if err := d.opt.QemuImg.ConvertRaw(ctx, tmp, out, v.Format); err != nil {
			return fmt.Errorf("import of '%s' on storage '%s': %w", volname, d.ID, err)
		}
		g, err := os.OpenFile(out, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("import of '%s' on storage '%s': %v", volname, d.ID, err)
		}
		err = finishFile(g)
		if cerr := g.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("import of '%s' on storage '%s': %v", volname, d.ID, err)
		}
		final = out
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("import of '%s' on storage '%s': %w", volname, d.ID, err)
	}
	// The old checksums go first: a crash between the rename and the new
	// checksum file leaves a replica without checksums (the next sync is
	// a full one), never one with wrong checksums.
	_ = os.Remove(sumsPath(path))
	if err := os.Rename(final, path); err != nil {
		return fmt.Errorf("import of '%s' on storage '%s': %v", volname, d.ID, err)
	}
	if err := writeSums(path, size, sums); err != nil {
		return fmt.Errorf("import of '%s' on storage '%s': checksums: %v", volname, d.ID, err)
	}
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		df.Close()
	}
	return nil
}

// writeSparse copies exactly size bytes from r into f, leaving all-zero
// chunks as holes, then reads on to make sure r ends there.
func writeSparse(ctx context.Context, f *os.File, size int64, r io.Reader, sums []byte) error {
	buf := make([]byte, importChunk)
	zero := make([]byte, importChunk)
	var off int64
	touched := time.Now()
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		if now := time.Now(); now.Sub(touched) > importTouch {
			_ = os.Chtimes(f.Name(), now, now) // not stale (removeStaleImports)
			touched = now
		}
		n := int(min(int64(len(buf)), size-off))
		got, err := io.ReadFull(r, buf[:n])
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: stream ended after %d of %d bytes", ErrStreamSize, off+int64(got), size)
			}
			return fmt.Errorf("read stream at byte %d: %w", off+int64(got), err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return fmt.Errorf("write: %v", err)
			}
		}
		putSum(sums, off, buf[:n])
		off += int64(n)
	}
	if err := expectEnd(ctx, r, size); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate: %v", err)
	}
	return nil
}

// expectEnd reads r, which should be at its end after `at` bytes, to its
// end and fails if any data comes. Reading to the end also lets a reader
// that checks its framing (an API upload) report a body cut short.
func expectEnd(ctx context.Context, r io.Reader, at int64) error {
	var one [1]byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: stream holds more than %d bytes", ErrStreamSize, at)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stream at byte %d: %w", at, err)
		}
	}
}

// finishFile gives a finished image PVE's mode and makes it durable.
func finishFile(f *os.File) error {
	if err := f.Chmod(0o640); err != nil { // PVE runs under umask 0037
		return fmt.Errorf("chmod %s: %v", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %v", f.Name(), err)
	}
	return nil
}

// checkFreeSpace refuses an import of size bytes into dir when the file
// system has less room than that.
func checkFreeSpace(storeID, dir string, size int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("unable to get free space of storage '%s' ('%s'): %v", storeID, dir, err)
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	avail := st.Bavail * bs
	if uint64(size) > avail {
		return fmt.Errorf("not enough free space on storage '%s' for a %d byte image: %d bytes available", storeID, size, avail)
	}
	return nil
}

// removeStaleImports removes the temporary files of imports in dir that a
// daemon stopped mid-way left behind: a raw file and its converted ".out"
// file go together, once neither changed for staleImport.
func removeStaleImports(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	fresh := func(name string) bool {
		fi, err := os.Lstat(filepath.Join(dir, name))
		return err == nil && time.Since(fi.ModTime()) <= staleImport
	}
	for _, e := range ents {
		name := e.Name()
		if !importTempRE.MatchString(name) || !e.Type().IsRegular() {
			continue
		}
		base := strings.TrimSuffix(name, ".out")
		if fresh(base) || fresh(base+".out") {
			continue
		}
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// ConvertRaw runs `qemu-img convert -f raw -O FORMAT SRC DST`, writing a
// new image dst of the raw image src (zero areas stay unallocated).
func (q QemuImg) ConvertRaw(ctx context.Context, src, dst, format string) error {
	if err := q.Convert(ctx, "raw", format, src, dst, false); err != nil {
		return fmt.Errorf("unable to convert image to %s: %w", format, err)
	}
	return nil
}

// Convert runs `qemu-img convert -f FROM -O TO SRC DST`; with intoNew
// false the target exists already and reads as zeros (`-n
// --target-is-zero`). A conversion takes as long as the image needs: only
// ctx bounds it, not q.Timeout.
func (q QemuImg) Convert(ctx context.Context, from, to, src, dst string, intoExisting bool) error {
	args := []string{"convert"}
	if intoExisting {
		args = append(args, "-n", "--target-is-zero")
	}
	args = append(args, "-f", from, "-O", to, src, dst)
	_, err := q.run(ctx, -1, args...)
	return err
}
