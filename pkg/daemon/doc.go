// Package daemon is the process lifecycle shared by the five node daemons
// (pvedaemon, pveproxy, pvestatd, spiceproxy, pvescheduler): the cobra root
// command with PVE's verbs (start, stop, restart, reload, status), the pid
// file and its lock, daemonizing, the privilege drop after binding, systemd
// readiness notification, and signal handling (SIGHUP reloads, SIGTERM and
// SIGINT stop gracefully within a bound, a second one forces the exit).
//
// A daemon supplies a [Spec] whose New function builds a [Service]; cmd/<name>
// does nothing but
//
//	os.Exit(daemon.Execute(daemon.Command(spec)))
//
// The package is Linux-only: it relies on open-file-description locks,
// /proc and the all-threads credential syscalls of the Go runtime.
package daemon
