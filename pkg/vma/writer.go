package vma

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Writer writes a VMA archive to a stream. Its methods are safe for
// concurrent use; clusters of different devices (and of one device, in any
// order) may be written from several goroutines.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	uuid    [16]byte
	devices []Device
	written []*clusterSet // index devID-1

	// The extent being assembled: header space, then stored blocks.
	extent  []byte
	pos     int // bytes of extent used (starts after the header)
	infos   [blocksPerExtent]blockInfo
	nInfos  int
	zero    [blockSize]byte // all-zero block to compare against
	sticky  error           // first write error; the archive is unusable after it
	closed  bool
	offset  int64 // bytes written to out so far
	extents int
}

// NewWriter validates configs and devices, writes the archive header to w
// and returns a Writer for the device data. Device IDs are assigned
// 1..len(devices) in order; the IDs passed in are ignored. Devices() returns
// them with their IDs.
//
// Limits (PVE's): at most 256 configs and 254 devices, config data and
// names at most 65535 bytes each, the whole header at most 512 KiB. Config
// names must be plain file names; device names must be unique, non-empty
// and not "vmstate" (reserved for RAM state, which this writer does not
// produce); device sizes must be positive.
func NewWriter(w io.Writer, uuid [16]byte, ctime time.Time, configs []Config, devices []Device) (*Writer, error) {
	hdr, err := encodeHeader(uuid, ctime, configs, devices)
	if err != nil {
		return nil, fmt.Errorf("vma: building header: %w", err)
	}
	vw := &Writer{
		out:     w,
		uuid:    uuid,
		devices: make([]Device, len(devices)),
		written: make([]*clusterSet, len(devices)),
		extent:  make([]byte, maxExtentSize),
		pos:     extentHeaderSize,
	}
	for i, d := range devices {
		d.ID = i + 1
		vw.devices[i] = d
		vw.written[i] = newClusterSet()
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("vma: writing header: %w", err)
	}
	vw.offset = int64(len(hdr))
	return vw, nil
}

// Devices returns the archive's devices with their assigned IDs.
func (w *Writer) Devices() []Device {
	return append([]Device(nil), w.devices...)
}

// device returns the device with id, or an error naming the bad id.
func (w *Writer) device(devID int) (Device, error) {
	if devID < 1 || devID > len(w.devices) {
		return Device{}, fmt.Errorf("vma: no device with id %d (archive has %d)", devID, len(w.devices))
	}
	return w.devices[devID-1], nil
}

// WriteCluster adds cluster number cluster of device devID. data is the
// cluster's content: ClusterSize bytes, or for the device's last cluster at
// least the bytes up to the device end (the rest counts as zero). Empty
// data (nil) stands for an all-zero cluster, as a NULL buffer does in PVE's
// writer. All-zero 4 KiB blocks are not stored, and bytes past the device
// end are never stored. Clusters of a device may come in any order, each at
// most once.
func (w *Writer) WriteCluster(devID int, cluster uint64, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	dev, err := w.device(devID)
	if err != nil {
		return err
	}
	total := clustersFor(dev.Size)
	if cluster >= total {
		return fmt.Errorf("vma: device %q: cluster %d beyond device end (%d clusters)", dev.Name, cluster, total)
	}
	start := int64(cluster) * ClusterSize
	valid := min(dev.Size-start, ClusterSize) // bytes of this cluster inside the device
	if n := len(data); n != 0 && (n > ClusterSize || int64(n) < valid) {
		return fmt.Errorf("vma: device %q: cluster %d has %d bytes, want %d", dev.Name, cluster, n, valid)
	}
	if !w.written[devID-1].add(uint32(cluster)) {
		return fmt.Errorf("vma: device %q: cluster %d written twice", dev.Name, cluster)
	}
	if w.nInfos >= writerClustersPerExtent {
		if err := w.flush(); err != nil {
			return err
		}
	}

	data = data[:min(int64(len(data)), valid)]
	var mask uint16
	for b := 0; b < blocksPerCluster; b++ {
		lo := b * blockSize
		if lo >= len(data) {
			break
		}
		block := data[lo:min(lo+blockSize, len(data))]
		if bytes.Equal(block, w.zero[:len(block)]) {
			continue
		}
		mask |= 1 << b
		n := copy(w.extent[w.pos:w.pos+blockSize], block)
		clear(w.extent[w.pos+n : w.pos+blockSize])
		w.pos += blockSize
	}
	w.infos[w.nInfos] = blockInfo{mask: mask, devID: uint8(devID), cluster: uint32(cluster)}
	w.nInfos++
	return nil
}

// CopyDevice reads device devID sequentially from r, exactly Size bytes,
// and writes all its clusters. It does not read past Size.
func (w *Writer) CopyDevice(devID int, r io.Reader) error {
	dev, err := w.device(devID)
	if err != nil {
		return err
	}
	buf := make([]byte, ClusterSize)
	total := clustersFor(dev.Size)
	for c := uint64(0); c < total; c++ {
		start := int64(c) * ClusterSize
		chunk := buf[:min(dev.Size-start, ClusterSize)]
		if n, err := io.ReadFull(r, chunk); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("vma: device %q: source ended at byte %d of %d", dev.Name, start+int64(n), dev.Size)
			}
			return fmt.Errorf("vma: device %q: reading at offset %d: %w", dev.Name, start+int64(n), err)
		}
		if err := w.WriteCluster(devID, c, chunk); err != nil {
			return err
		}
	}
	return nil
}

// Close writes the last extent. It does not close the underlying writer.
// Like PVE's writer it then fails if a device is incomplete (a cluster was
// never written): PVE's reader rejects such an archive. The archive bytes
// written so far stay as they are; the caller should discard them.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("vma: writer already closed")
	}
	if w.sticky != nil {
		w.closed = true
		return w.sticky
	}
	// PVE flushes once more when the last stream closes; with no devices
	// that writes one empty extent.
	if w.nInfos > 0 || len(w.devices) == 0 {
		if err := w.flush(); err != nil {
			w.closed = true
			return err
		}
	}
	w.closed = true
	for i, d := range w.devices {
		total := clustersFor(d.Size)
		set := w.written[i]
		if c, missing := set.firstMissing(total); missing {
			return fmt.Errorf("vma: device %q incomplete: %d of %d clusters written, first missing cluster %d", d.Name, set.count, total, c)
		}
	}
	return nil
}

func (w *Writer) usable() error {
	if w.closed {
		return errors.New("vma: writer is closed")
	}
	return w.sticky
}

// flush writes the assembled extent (header and stored blocks) and resets
// the buffer.
func (w *Writer) flush() error {
	hdr := w.extent[:extentHeaderSize]
	clear(hdr)
	copy(hdr[offExtMagic:], extentMagic)
	binary.BigEndian.PutUint16(hdr[offExtBlocks:], uint16((w.pos-extentHeaderSize)/blockSize))
	copy(hdr[offExtUUID:], w.uuid[:])
	for i := 0; i < w.nInfos; i++ {
		binary.BigEndian.PutUint64(hdr[offExtBlockInfo+8*i:], w.infos[i].encode())
	}
	sum := md5.Sum(hdr)
	copy(hdr[offExtMD5:], sum[:])

	if _, err := w.out.Write(w.extent[:w.pos]); err != nil {
		w.sticky = fmt.Errorf("vma: writing extent %d at offset %d: %w", w.extents, w.offset, err)
		return w.sticky
	}
	w.offset += int64(w.pos)
	w.extents++
	w.pos = extentHeaderSize
	w.nInfos = 0
	return nil
}
