// Package nodestatus reads the figures of this host that GET
// /nodes/{node}/status and the entries of GET /nodes report: CPU usage and
// model, load, memory, swap, KSM, root filesystem, uptime, kernel and boot
// mode.
//
// Reading and parsing are split the way node_exporter splits them: the
// Parse* functions are pure functions from the bytes of a /proc or /sys file
// to a typed value and are tested on fixtures in testdata/, while a Collector
// reads the files below injectable procfs and sysfs roots (Roots) and makes
// the two syscalls that have no file (statfs of the root filesystem, uname).
//
// Field names, JSON types and units follow what PVE's API returns, including
// its quirks: load averages are strings, cpuinfo.mhz and cpuinfo.hvm are
// strings, boot-info.secureboot is 0 or 1, memory figures are bytes and
// memory.used is total minus available.
//
// CPU usage ("cpu", "wait") is a fraction between 0 and 1 over the interval
// since the previous sample, which the Collector keeps. PVE answers 0 on its
// very first call; this package instead takes two samples 100 ms apart on the
// first call, so the first figure is a real (if short-term) measurement rather
// than a placeholder or the average since boot. Later calls use the interval
// since the last sample; when less than a second has passed the previous
// figure is returned again, so that callers polling in a tight loop do not get
// figures computed over a few clock ticks.
package nodestatus
