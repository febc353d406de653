// Package rrd keeps the status history PVE shows in its graphs: round-robin
// archives with the layout PVE's pmxcfs gives its RRD files (status.c:
// 60-second steps, GAUGE and DERIVE data sources, AVERAGE and MAX archives
// of 1 minute, 30 minutes, 6 hours and 1 week), consolidated the way
// rrdtool's rrd_update does it and read back the way PVE's
// PVE::RRD::create_rrd_data and rrd_fetch do.
//
// A Series is one RRD in memory. A Store keeps many series by key
// ("pve-node-9.0/pve1", "pve-vm-9.0/100", "pve-storage-9.0/pve1/local")
// under a directory laid out as PVE's /var/lib/rrdcached/db, holds only
// their consolidation state and the rows written since the last flush in
// memory, and on a periodic flush writes what changed in place, through a
// journal that makes each flush atomic (journal.go). The file format is
// our own (format.go documents it); docs/pvestatd.md explains why
// rrdtool's is not used.
//
// The package is pure: it imports no other package of the project.
package rrd
