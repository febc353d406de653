package vma

import (
	"crypto/md5"
	"encoding/binary"
)

// ClusterSize is the unit in which device data is written: 64 KiB.
const ClusterSize = 65536

// Layout constants of the format (pve-qemu vma.h).
const (
	// blockSize is the granularity of zero suppression inside a cluster.
	blockSize = 4096
	// blocksPerCluster is the number of mask bits per cluster.
	blocksPerCluster = ClusterSize / blockSize

	// headerFixedSize is sizeof(VmaHeader): the fixed part of the archive
	// header before the blob buffer.
	headerFixedSize = 12288
	// maxHeaderSize is the largest header PVE's writer produces
	// (HEADERBUF_SIZE = 8 clusters); larger headers are refused.
	maxHeaderSize = 8 * ClusterSize
	// maxConfigs is the number of config name/data slots in the header.
	maxConfigs = 256
	// maxBlobLen is the largest blob the 2-byte length prefix can describe.
	maxBlobLen = 65535

	// maxWriterDevices is how many devices PVE's writer registers (ids
	// 1..254; 0 and 255 are reserved). The reader accepts ids up to 255 as
	// PVE's reader does.
	maxWriterDevices = 254
	maxDeviceID      = 255

	extentHeaderSize = 512
	// blocksPerExtent is the number of block-info entries in an extent header.
	blocksPerExtent = 59
	// writerClustersPerExtent is how many clusters PVE's writer puts in one
	// extent before it flushes (it flushes once 59-1 entries are used).
	writerClustersPerExtent = blocksPerExtent - 1
	// maxExtentSize is the largest extent (header plus data) a reader
	// has to buffer.
	maxExtentSize = extentHeaderSize + blocksPerExtent*ClusterSize
	// maxExtentBlocks is the largest block_count an extent can carry.
	maxExtentBlocks = blocksPerExtent * blocksPerCluster

	// maxClusters is the number of clusters one device can have: cluster
	// numbers are 32-bit.
	maxClusters = 1 << 32
	// maxDeviceSize is the largest device the format can describe.
	maxDeviceSize = maxClusters * ClusterSize

	// vmstateName is the device name PVE reserves for saved VM RAM; its
	// clusters must appear in order and its size is not a bound.
	vmstateName = "vmstate"
)

// Magic numbers at the start of the archive header and of each extent.
const (
	headerMagic = "VMA\x00"
	extentMagic = "VMAE"
)

// Offsets inside the fixed archive header (all numbers big-endian).
const (
	offMagic         = 0
	offVersion       = 4
	offUUID          = 8
	offCTime         = 24
	offMD5           = 32
	offBlobOffset    = 48
	offBlobSize      = 52
	offHeaderSize    = 56
	offConfigNames   = 2044
	offConfigData    = 3068
	offDevInfo       = 4096
	devInfoEntrySize = 32 // name ptr u32, reserved u32, size u64, reserved 16 bytes

	formatVersion = 1
)

// Offsets inside an extent header.
const (
	offExtMagic     = 0
	offExtReserved  = 4
	offExtBlocks    = 6
	offExtUUID      = 8
	offExtMD5       = 24
	offExtBlockInfo = 40
)

// blockInfo is one entry of an extent header: which cluster of which device
// follows, and which of its 4 KiB blocks are stored. On disk it is a
// big-endian uint64: mask<<48 | reserved<<40 | devID<<32 | cluster.
type blockInfo struct {
	mask    uint16
	devID   uint8
	cluster uint32
}

func (b blockInfo) encode() uint64 {
	return uint64(b.mask)<<48 | uint64(b.devID)<<32 | uint64(b.cluster)
}

// decodeBlockInfo splits an on-disk entry; the reserved byte is ignored,
// as PVE's reader does.
func decodeBlockInfo(v uint64) blockInfo {
	return blockInfo{mask: uint16(v >> 48), devID: uint8(v >> 32), cluster: uint32(v)}
}

// storedBlocks is the number of 4 KiB blocks the mask says are stored.
func (b blockInfo) storedBlocks() int {
	n := 0
	for m := b.mask; m != 0; m &= m - 1 {
		n++
	}
	return n
}

// extentHeaderChecksum computes the MD5 of a 512-byte extent header with
// its md5 field taken as zero. hdr is not modified.
func extentHeaderChecksum(hdr []byte) [16]byte {
	return checksumWithZeroedField(hdr, offExtMD5)
}

// checksumWithZeroedField computes the MD5 of buf as if the 16 bytes at off
// were zero, without modifying buf.
func checksumWithZeroedField(buf []byte, off int) [16]byte {
	var zero [16]byte
	h := md5.New()
	h.Write(buf[:off])
	h.Write(zero[:])
	h.Write(buf[off+16:])
	var sum [16]byte
	h.Sum(sum[:0])
	return sum
}

// clustersFor is the number of clusters a device of size bytes spans.
func clustersFor(size int64) uint64 {
	return (uint64(size) + ClusterSize - 1) / ClusterSize
}

func putU32(b []byte, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
func getU32(b []byte, off int) uint32    { return binary.BigEndian.Uint32(b[off:]) }
