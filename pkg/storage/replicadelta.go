package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Incremental replication. Image files have no snapshots to send the
// difference from (PVE replicates ZFS volumes only), so the target keeps,
// beside each replica, the SHA-256 of every 64 KiB chunk of its content as
// it imported it. The source compares its new point-in-time image with
// those checksums and sends only the chunks that differ (ImportDelta); the
// target applies them to a copy of the replica and replaces it as a full
// import does. The checksum file names the replica file it describes
// (inode, size, modification time), so a replica changed or replaced by
// anything else is never taken as the base of a delta.

const (
	sumLen    = sha256.Size
	sumsMagic = "PVNSUMS1"
	// deltaHeader is the size of a delta record's header: the chunk's
	// offset (8 bytes) and length (4 bytes), big-endian.
	deltaHeader = 12
)

// ChunkSize is the unit of replica checksums and delta records.
const ChunkSize = importChunk

func sumCount(size int64) int64 { return (size + importChunk - 1) / importChunk }

func putSum(sums []byte, off int64, data []byte) {
	h := sha256.Sum256(data)
	copy(sums[off/importChunk*sumLen:], h[:])
}

// ChunkSums returns the checksums of r's size bytes in replica chunks, as
// a target keeps them.
func ChunkSums(r io.Reader, size int64) ([]byte, error) {
	sums := make([]byte, sumCount(size)*sumLen)
	buf := make([]byte, importChunk)
	for off := int64(0); off < size; off += importChunk {
		n := int(min(importChunk, size-off))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return nil, err
		}
		putSum(sums, off, buf[:n])
	}
	return sums, nil
}

// SumsDigest identifies a set of replica checksums (and so the replica's
// content): a delta names the digest of the base it applies to.
func SumsDigest(size int64, sums []byte) string {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:])
	h.Write(sums)
	return hex.EncodeToString(h.Sum(nil))
}

func sumsPath(volPath string) string {
	return filepath.Join(filepath.Dir(volPath), "."+filepath.Base(volPath)+".pvenode-sums")
}

// fileID is what identifies the replica file a checksum file describes.
func fileID(fi os.FileInfo) []byte {
	var b [24]byte
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		binary.BigEndian.PutUint64(b[0:], st.Ino)
	}
	binary.BigEndian.PutUint64(b[8:], uint64(fi.Size()))
	binary.BigEndian.PutUint64(b[16:], uint64(fi.ModTime().UnixNano()))
	return b[:]
}

// writeSums stores the checksums of the replica now at volPath.
func writeSums(volPath string, size int64, sums []byte) error {
	fi, err := os.Stat(volPath)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(sumsMagic)
	b.Write(fileID(fi))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	b.Write(n[:])
	b.Write(sums)
	tmp := sumsPath(volPath) + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, sumsPath(volPath))
}

// ReplicaSums returns the size and chunk checksums of the replica volname,
// or ok=false when there is no replica or its checksums do not describe
// the file as it is now.
func (d *Dir) ReplicaSums(volname string) (size int64, sums []byte, ok bool, err error) {
	path, _, err := d.checkReplicaVolume(volname)
	if err != nil {
		return 0, nil, false, err
	}
	data, err := os.ReadFile(sumsPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil, false, nil
	}
	head := len(sumsMagic) + 24 + 8
	if len(data) < head || string(data[:len(sumsMagic)]) != sumsMagic ||
		!bytes.Equal(data[len(sumsMagic):len(sumsMagic)+24], fileID(fi)) {
		return 0, nil, false, nil
	}
	size = int64(binary.BigEndian.Uint64(data[head-8 : head]))
	sums = data[head:]
	if size < 1 || int64(len(sums)) != sumCount(size)*sumLen {
		return 0, nil, false, nil
	}
	return size, sums, true, nil
}

// ImportDelta updates the replica volname from a delta: r holds records of
// changed chunks (offset and length, big-endian, then the data; offsets on
// chunk boundaries), ended by a record of length 0. base must be the
// SumsDigest of the replica's checksums: a delta computed against another
// state of the replica is refused. The new replica is built in a
// temporary file and replaces the old one as ImportRaw does.
func (d *Dir) ImportDelta(ctx context.Context, volname string, size int64, base string, r io.Reader) error {
	path, v, err := d.checkReplicaVolume(volname)
	if err != nil {
		return err
	}
	oldSize, oldSums, ok, err := d.ReplicaSums(volname)
	if err != nil {
		return err
	}
	if !ok || oldSize != size || SumsDigest(oldSize, oldSums) != base {
		return fmt.Errorf("%w: replica '%s' on storage '%s' is not the base of this delta", ErrDeltaBase, volname, d.ID)
	}
	return d.importReplica(ctx, volname, size, func(f *os.File, sums []byte) error {
		copy(sums, oldSums)
		if err := d.copyReplica(ctx, path, v.Format, f, size); err != nil {
			return fmt.Errorf("copy of the current replica: %w", err)
		}
		return applyDelta(ctx, f, size, r, sums)
	})
}

// ErrDeltaBase is returned (wrapped) by ImportDelta when the replica is
// not the state the delta was computed against; a full import is needed.
var ErrDeltaBase = errors.New("delta base mismatch")

// copyReplica fills f with the raw content of the replica at path
// (sparse).
func (d *Dir) copyReplica(ctx context.Context, path, format string, f *os.File, size int64) error {
	src := path
	if format != "raw" {
		raw := f.Name() + ".base"
		defer os.Remove(raw)
		if err := d.opt.QemuImg.Convert(ctx, format, "raw", path, raw, false); err != nil {
			return err
		}
		src = raw
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeSparse(ctx, f, size, in, make([]byte, sumCount(size)*sumLen))
}

// applyDelta writes the records of r into f and updates their checksums.
func applyDelta(ctx context.Context, f *os.File, size int64, r io.Reader, sums []byte) error {
	var hdr [deltaHeader]byte
	buf := make([]byte, importChunk)
	var read int64 // bytes of the delta read
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("%w: delta ended without its end record", ErrStreamSize)
		}
		read += deltaHeader
		off := int64(binary.BigEndian.Uint64(hdr[:8]))
		n := int64(binary.BigEndian.Uint32(hdr[8:]))
		if n == 0 {
			break
		}
		if off%importChunk != 0 || off < 0 || off >= size || n > importChunk || off+n > size ||
			(n != importChunk && off+n != size) {
			return fmt.Errorf("delta record at offset %d, length %d: not a chunk of the %d byte image", off, n, size)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return fmt.Errorf("%w: delta ended in the chunk at %d", ErrStreamSize, off)
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("write: %v", err)
		}
		putSum(sums, off, buf[:n])
		read += n
	}
	return expectEnd(ctx, r, read)
}

// DeltaRecord writes one delta record header for a chunk.
func DeltaRecord(off int64, n int) []byte {
	var hdr [deltaHeader]byte
	binary.BigEndian.PutUint64(hdr[:8], uint64(off))
	binary.BigEndian.PutUint32(hdr[8:], uint32(n))
	return hdr[:]
}

// DeltaEnd is the record that ends a delta.
func DeltaEnd() []byte { return DeltaRecord(0, 0) }

// DeltaPlan compares the image src (size bytes) with a replica's checksums
// and returns the offsets of the chunks that differ and the length of the
// delta that carries them.
func DeltaPlan(src io.ReaderAt, size int64, sums []byte) (changed []int64, length int64, err error) {
	if int64(len(sums)) != sumCount(size)*sumLen {
		return nil, 0, fmt.Errorf("checksums of %d chunks for a %d byte image", len(sums)/sumLen, size)
	}
	buf := make([]byte, importChunk)
	length = deltaHeader
	for off := int64(0); off < size; off += importChunk {
		n := int(min(importChunk, size-off))
		if _, err := src.ReadAt(buf[:n], off); err != nil {
			return nil, 0, err
		}
		h := sha256.Sum256(buf[:n])
		if !bytes.Equal(h[:], sums[off/importChunk*sumLen:][:sumLen]) {
			changed = append(changed, off)
			length += deltaHeader + int64(n)
		}
	}
	return changed, length, nil
}

// DeltaReader streams the delta of the changed chunks of src.
func DeltaReader(src io.ReaderAt, size int64, changed []int64) io.Reader {
	return &deltaReader{src: src, size: size, changed: changed}
}

type deltaReader struct {
	src     io.ReaderAt
	size    int64
	changed []int64
	pending []byte
	done    bool
	buf     []byte
}

func (d *deltaReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		if d.done {
			return 0, io.EOF
		}
		if len(d.changed) == 0 {
			d.pending = DeltaEnd()
			d.done = true
			break
		}
		off := d.changed[0]
		d.changed = d.changed[1:]
		n := int(min(importChunk, d.size-off))
		if d.buf == nil {
			d.buf = make([]byte, deltaHeader+importChunk)
		}
		copy(d.buf, DeltaRecord(off, n))
		if _, err := d.src.ReadAt(d.buf[deltaHeader:deltaHeader+n], off); err != nil {
			return 0, err
		}
		d.pending = d.buf[:deltaHeader+n]
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}
