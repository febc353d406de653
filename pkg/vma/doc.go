// Package vma reads and writes Proxmox VE "Virtual Machine Archive" (VMA)
// files, the format vzdump uses for QEMU guest backups
// (vzdump-qemu-<vmid>-<time>.vma[.zst]).
//
// An archive is a header followed by a stream of extents. The header holds
// a UUID, the backup time, up to 256 configuration files (name and bytes)
// and up to 255 device descriptions (name and size in bytes), all protected
// by an MD5 checksum. Each extent is a 512-byte header naming up to 59
// 64 KiB clusters (device id, cluster number and a 16-bit mask of the
// non-zero 4 KiB blocks in that cluster), followed by the non-zero blocks
// themselves. Every extent header carries the archive UUID and its own MD5;
// the block data has no checksum of its own.
//
// The byte layout, the limits and the checks follow pve-qemu's vma_spec.txt
// and its vma-writer.c / vma-reader.c, so archives written here are meant
// to be accepted by PVE's "vma extract" and archives written by PVE to be
// read here. Where PVE's code and its spec disagree, the code wins: the
// 2-byte length in front of each blob in the header's blob buffer is
// little-endian, blob_buffer_size is the used length (not rounded to 512),
// and PVE's writer puts at most 58 clusters in one extent. The writer
// reproduces PVE's writer byte for byte, given the same UUID, time, configs,
// devices and cluster order.
//
// Deliberate differences from PVE: the writer refuses a device named
// "vmstate" (PVE's reserved name for RAM state, whose clusters must be
// written in order) and config names that are not plain file names (PVE
// stores the base name); the reader refuses such config names too, and
// device sizes above 2^48 bytes (cluster numbers are 32-bit). The reader
// checks a whole extent header before writing any of its data, and checks
// completeness for every disk device, not only the ones being written.
//
// The Reader works on a plain stream (for example a zstd decoder) and never
// seeks. Its memory is bounded by the format's limits: the header is at
// most 512 KiB and an extent at most 512 + 59*64 KiB bytes; the record of
// clusters already seen (to reject duplicates and find missing ones) is
// sparse and grows only with the clusters the stream actually names.
package vma
