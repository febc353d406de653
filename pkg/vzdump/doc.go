// Package vzdump backs up VMs of this node into VMA archives (the Proxmox
// format of pkg/vma), optionally compressed with zstd or gzip, as PVE's
// vzdump does for QEMU guests, and reads such archives back (header,
// config, disk data) for restore and extractconfig.
//
// A backup of one VM writes, in the dump directory,
//
//	vzdump-qemu-<vmid>-<YYYY_MM_DD-hh_mm_ss>.vma[.zst|.gz]
//
// (the time stamp is the start in local time) through a temporary
// "<name>.dat" renamed at the end, so that a failed or cancelled backup
// leaves no archive; beside it the ".log" of the guest's backup, and with a
// storage target the ".notes" and ".protected" side files.
//
// Modes, as PVE:
//   - snapshot: a running VM keeps running. QEMU's own block job
//     (drive-backup, sync=full, one QMP transaction for all disks) copies a
//     point-in-time image of each disk while the guest runs.
//   - suspend: the VM is paused (QMP stop) until the block jobs have
//     started, then resumed.
//   - stop: a running VM is shut down (stopwait, then stopped hard), its
//     disks are read directly and it is started again.
//   - a stopped VM: the disks are read directly in any mode.
//
// bwlimit (KiB/s) is the speed of QEMU's block jobs, or the read rate of
// disks read directly. Jobs of one Engine run one at a time (lockwait is
// the wait for the running one), as with PVE's global vzdump lock.
// Retention (remove=1) uses pkg/storage's prune-backups implementation.
//
// Known differences from PVE: pve-qemu streams the backup job straight into
// the VMA writer (its "backup" QMP command); stock QEMU has no such
// command, so the point-in-time copy is first written by QEMU to a sparse
// raw file in "<dumpdir>/<name>.tmp" and then packed into the archive. This
// needs temporary space in the dump directory of up to the allocated size
// of the VM's disks. The same applies to qcow2 disks read directly (stop
// mode or stopped VM), which are converted to sparse raw files with
// qemu-img first. In stop mode the VM is started again only after its disks
// were read (PVE restarts it at once and backs up from the running QEMU),
// and a guest that does not shut down within stopwait is stopped hard
// (PVE fails the backup). There is no guest-agent fs-freeze, no fleecing,
// no hook script, no notification, no TPM state backup and no PBS target.
package vzdump
