// Package storage reads and writes /etc/pve/storage.cfg in PVE's section-config
// format, parses volume IDs, and implements PVE's "dir" storage plugin: volume
// paths, content listing, disk image allocation with qemu-img, freeing, status
// from statfs and activation (creation of the directory layout).
//
// The package is pure with respect to the config root: Parse and Marshal work
// on bytes, and the caller reads and writes storage.cfg through pvefs. Only the
// Dir methods touch the host (the storage directory and qemu-img), always under
// a context with a timeout.
package storage
