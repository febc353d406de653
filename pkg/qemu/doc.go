// Package qemu holds what pvenode needs to know about QEMU virtual machines
// short of managing their processes: the VM config files of
// /etc/pve/qemu-server/VMID.conf in PVE's format (Parse, Config.Marshal,
// Digest), typed accessors for the keys a command line needs (drives, nets,
// memory, CPU topology, boot order, display), the QEMU command line built
// from a config (CommandLine) and a small QMP client (DialQMP).
//
// The package touches no files itself: callers read and write configs
// through pvefs and start QEMU themselves.
package qemu
