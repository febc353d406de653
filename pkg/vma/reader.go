package vma

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Reader reads a VMA archive from a stream. It never seeks.
type Reader struct {
	r         io.Reader
	hdr       *parsedHeader
	extracted bool
}

// NewReader reads the archive header from r and verifies it (magic, size,
// MD5, version, blob pointers). The header is at most 512 KiB; larger
// claimed sizes are rejected before anything is allocated for them.
func NewReader(r io.Reader) (*Reader, error) {
	fixed := make([]byte, headerFixedSize)
	if n, err := io.ReadFull(r, fixed); err != nil {
		return nil, readErr(fmt.Sprintf("reading header (%d of %d bytes)", n, headerFixedSize), err)
	}
	if string(fixed[offMagic:offMagic+4]) != headerMagic {
		return nil, fmt.Errorf("vma: not a vma archive: magic %q, want %q", fixed[offMagic:offMagic+4], headerMagic)
	}
	size := getU32(fixed, offHeaderSize)
	if size <= headerFixedSize || size > maxHeaderSize {
		return nil, fmt.Errorf("vma: header size %d out of range (%d, %d]", size, headerFixedSize, maxHeaderSize)
	}
	hdr := make([]byte, size)
	copy(hdr, fixed)
	if n, err := io.ReadFull(r, hdr[headerFixedSize:]); err != nil {
		return nil, readErr(fmt.Sprintf("reading header blob buffer (%d of %d bytes)", n, int(size)-headerFixedSize), err)
	}
	p, err := parseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("vma: %w", err)
	}
	return &Reader{r: r, hdr: p}, nil
}

// readErr turns a short read into a "truncated" error and wraps others.
func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("vma: %s: archive truncated", what)
	}
	return fmt.Errorf("vma: %s: %w", what, err)
}

// UUID returns the archive's UUID.
func (r *Reader) UUID() [16]byte { return r.hdr.uuid }

// CTime returns the backup time stored in the header, in UTC.
func (r *Reader) CTime() time.Time { return time.Unix(r.hdr.ctime, 0).UTC() }

// Configs returns the configuration files in header order.
func (r *Reader) Configs() []Config {
	out := make([]Config, len(r.hdr.configs))
	for i, c := range r.hdr.configs {
		out[i] = Config{Name: c.Name, Data: bytes.Clone(c.Data)}
	}
	return out
}

// Devices returns the devices ordered by ID. A device named "vmstate" holds
// saved RAM rather than a disk image.
func (r *Reader) Devices() []Device {
	return append([]Device(nil), r.hdr.devices...)
}

// deviceState is what Extract tracks per device.
type deviceState struct {
	dev         Device
	target      io.WriterAt // nil: verify only
	vmstate     bool
	nextVMState uint32 // vmstate clusters must come in order
	seen        *clusterSet
}

// Extract reads all extents, verifying each, and writes every stored block
// to the WriterAt that open returns for its device. open is called once for
// every device, in ID order, before any extent is read; a nil WriterAt
// means the device's data is verified but not written. Zero blocks are not
// written, so targets must read as zero where nothing is written (for
// example fresh sparse files of the device's size).
//
// Checks, as in PVE's reader: extent MD5, UUID and magic, known device
// ids, cluster numbers inside the device, no cluster stored twice, vmstate
// clusters in order, block count matching the masks, and at the end that
// every cluster of every disk device was present. Unlike PVE, an extent is
// checked completely before any of its data is written, and completeness is
// also checked for devices that are not written. Data of a "vmstate"
// device (saved RAM) is written at its cluster offsets and may extend past
// its Size, as in PVE. Extract can run once.
func (r *Reader) Extract(open func(d Device) (io.WriterAt, error)) error {
	if r.extracted {
		return errors.New("vma: Extract already called; the stream is consumed")
	}
	r.extracted = true

	var byID [maxDeviceID + 1]*deviceState
	states := make([]*deviceState, 0, len(r.hdr.devices))
	for _, d := range r.hdr.devices {
		target, err := open(d)
		if err != nil {
			return fmt.Errorf("vma: opening target for device %q: %w", d.Name, err)
		}
		st := &deviceState{dev: d, target: target, vmstate: d.Name == vmstateName, seen: newClusterSet()}
		byID[d.ID] = st
		states = append(states, st)
	}

	// The data buffer grows with the extents seen, up to 59 clusters.
	hdrBuf := make([]byte, extentHeaderSize)
	var data []byte
	offset := int64(r.hdr.size)
	for {
		n, err := io.ReadFull(r.r, hdrBuf)
		if err == io.EOF {
			break // clean end between extents
		}
		if err != nil {
			return extentErr(offset, err, fmt.Sprintf("reading header (%d of %d bytes)", n, extentHeaderSize))
		}
		infos, blocks, err := checkExtentHeader(hdrBuf, r.hdr.uuid, &byID)
		if err != nil {
			return fmt.Errorf("vma: extent at offset %d: %w", offset, err)
		}
		if need := blocks * blockSize; need > cap(data) {
			data = make([]byte, max(need, min(2*cap(data), maxExtentBlocks*blockSize)))
		}
		data = data[:blocks*blockSize]
		if n, err := io.ReadFull(r.r, data); err != nil {
			return extentErr(offset, err, fmt.Sprintf("reading data (%d of %d bytes)", n, len(data)))
		}
		if err := writeExtent(infos, data, &byID); err != nil {
			return fmt.Errorf("vma: extent at offset %d: %w", offset, err)
		}
		offset += int64(extentHeaderSize + len(data))
	}

	for _, st := range states {
		if st.vmstate {
			continue
		}
		if c, missing := st.seen.firstMissing(clustersFor(st.dev.Size)); missing {
			return fmt.Errorf("vma: device %q: cluster %d missing from archive", st.dev.Name, c)
		}
	}
	return nil
}

func extentErr(offset int64, err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("vma: extent at offset %d: %s: archive truncated", offset, what)
	}
	return fmt.Errorf("vma: extent at offset %d: %s: %w", offset, what, err)
}

// checkExtentHeader verifies an extent header and all its block infos and
// records the clusters as seen. It returns the used entries and the number
// of 4 KiB blocks of data that follow.
func checkExtentHeader(hdr []byte, uuid [16]byte, byID *[maxDeviceID + 1]*deviceState) ([]blockInfo, int, error) {
	want := hdr[offExtMD5 : offExtMD5+16]
	if got := extentHeaderChecksum(hdr); !bytes.Equal(got[:], want) {
		return nil, 0, fmt.Errorf("header checksum mismatch: stored %x, computed %x", want, got)
	}
	if !bytes.Equal(hdr[offExtUUID:offExtUUID+16], uuid[:]) {
		return nil, 0, fmt.Errorf("uuid %x differs from the archive's %x", hdr[offExtUUID:offExtUUID+16], uuid)
	}
	if string(hdr[offExtMagic:offExtMagic+4]) != extentMagic || binary.BigEndian.Uint16(hdr[offExtReserved:]) != 0 {
		return nil, 0, fmt.Errorf("bad extent magic %q/reserved %x", hdr[offExtMagic:offExtMagic+4], hdr[offExtReserved:offExtReserved+2])
	}
	blocks := int(binary.BigEndian.Uint16(hdr[offExtBlocks:]))
	if blocks > maxExtentBlocks {
		return nil, 0, fmt.Errorf("block count %d exceeds the maximum of %d", blocks, maxExtentBlocks)
	}

	infos := make([]blockInfo, 0, blocksPerExtent)
	stored := 0
	for i := 0; i < blocksPerExtent; i++ {
		bi := decodeBlockInfo(binary.BigEndian.Uint64(hdr[offExtBlockInfo+8*i:]))
		if bi.devID == 0 {
			continue // unused slot
		}
		st := byID[bi.devID]
		if st == nil {
			return nil, 0, fmt.Errorf("entry %d: unknown device id %d", i, bi.devID)
		}
		if err := st.accept(bi); err != nil {
			return nil, 0, fmt.Errorf("entry %d: %w", i, err)
		}
		stored += bi.storedBlocks()
		infos = append(infos, bi)
	}
	if stored != blocks {
		return nil, 0, fmt.Errorf("block count %d does not match the %d blocks marked in the masks", blocks, stored)
	}
	return infos, blocks, nil
}

// accept checks one block info against the device and marks its cluster.
func (st *deviceState) accept(bi blockInfo) error {
	if st.vmstate {
		if bi.cluster != st.nextVMState {
			return fmt.Errorf("device %q: vmstate cluster %d out of order, want %d", st.dev.Name, bi.cluster, st.nextVMState)
		}
		st.nextVMState++
		return nil
	}
	start := uint64(bi.cluster) * ClusterSize
	if start >= uint64(st.dev.Size) {
		return fmt.Errorf("device %q: cluster %d beyond device end (%d bytes)", st.dev.Name, bi.cluster, st.dev.Size)
	}
	for b := 0; b < blocksPerCluster; b++ {
		if bi.mask&(1<<b) != 0 && start+uint64(b)*blockSize >= uint64(st.dev.Size) {
			return fmt.Errorf("device %q: cluster %d block %d lies beyond device end (%d bytes)", st.dev.Name, bi.cluster, b, st.dev.Size)
		}
	}
	if !st.seen.add(bi.cluster) {
		return fmt.Errorf("device %q: cluster %d stored twice", st.dev.Name, bi.cluster)
	}
	return nil
}

// writeExtent writes the stored blocks of a verified extent. Runs of
// consecutive stored blocks of one cluster are written with one call.
func writeExtent(infos []blockInfo, data []byte, byID *[maxDeviceID + 1]*deviceState) error {
	pos := 0
	for _, bi := range infos {
		st := byID[bi.devID]
		n := bi.storedBlocks() * blockSize
		if st.target == nil {
			pos += n
			continue
		}
		base := int64(bi.cluster) * ClusterSize
		for b := 0; b < blocksPerCluster; {
			if bi.mask&(1<<b) == 0 {
				b++
				continue
			}
			run := 0
			for b+run < blocksPerCluster && bi.mask&(1<<(b+run)) != 0 {
				run++
			}
			off := base + int64(b)*blockSize
			length := int64(run) * blockSize
			if !st.vmstate {
				length = min(length, st.dev.Size-off)
			}
			if _, err := st.target.WriteAt(data[pos:pos+int(length)], off); err != nil {
				return fmt.Errorf("device %q: writing %d bytes at offset %d: %w", st.dev.Name, length, off, err)
			}
			pos += run * blockSize
			b += run
		}
	}
	return nil
}
