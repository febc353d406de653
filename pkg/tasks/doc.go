// Package tasks implements PVE's worker-task model: UPIDs, task log files,
// the "active" list and the "index" archive, with PVE's exact formats and
// file layout, so that PVE's own tools and this suite can read each other's
// task records.
//
// Layout below the root (PVE: /var/log/pve/tasks, see PVE::UPID and
// PVE::RESTEnvironment::active_workers in pve-common):
//
//	<root>/<X>/<UPID>   task log; X is the last character of the UPID's
//	                    starttime field as written (one hex digit)
//	<root>/active       running tasks and the most recent finished ones
//	                    (at most 25 lines counting the running ones):
//	                    "<UPID> <saved 0|1>[ <endtime %08X>[ <status>]]"
//	<root>/index        archive, one "<UPID> <endtime %08X> <status>" line per
//	                    finished task, appended; renamed to index.1 once it
//	                    is larger than 50000 bytes (one generation)
//	<root>/.active.lock flock serialising updates of active and index
//
// A task log ends with "TASK OK", "TASK WARNINGS: <n>" or
// "TASK ERROR: <message, newlines replaced by spaces>"; the task's status is
// derived from that last line ("OK", "WARNINGS: n", the message), and is
// "unexpected status" when the log has no such line (a crashed worker).
//
// Differences from PVE, by design: a PVE task is a forked process, here it
// is a goroutine of the daemon that starts it. The UPID's pid and pstart are
// therefore the daemon's own pid and process start time (clock ticks since
// boot, field 22 of /proc/self/stat), identical for all its tasks. PVE's
// UPIDs are unique because every worker is a new process; here uniqueness
// comes from the starttime field: the log file is created with O_EXCL and,
// when a task of the same type, id and user already started in the same
// second, the starttime is advanced by one second until the name is free
// (bounded). Whether a task of this daemon is running is answered by the
// Manager's own table, not /proc; tasks recorded by other processes (other
// pid or pstart) are checked in /proc as PVE does, so several daemons may
// share one root.
//
// Tasks survive the request that started them (Start detaches from the
// caller's cancellation) and a reload (SIGHUP is handled in-process). They
// do not survive a restart or a crash: Settle, run at start, moves every
// entry that is recorded as running but whose worker no longer exists to the
// index with the status its log gives ("unexpected status" if unfinished),
// exactly like PVE's active_workers.
package tasks
