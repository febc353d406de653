// Package audit writes the audit log: one JSON object per line for every
// authentication decision worth keeping (logins, refused credentials,
// refused CSRF tokens, permission denials) and every write call, with the
// time, the user or token, the client address, the method, the path and
// the outcome. docs/audit.md describes the fields and which daemon records
// what.
//
// A Logger never makes a request wait for the disk beyond a small bound:
// Record hands the event to a bounded queue, and one goroutine formats and
// writes the lines, flushing whenever the queue runs empty. When the queue
// stays full for longer than the bound, events are dropped and counted, and
// the writer puts an "event":"dropped" line with the count into the log and
// warns in the daemon's log.
//
// The package depends on the standard library only, so every layer may
// record events; WithNote and SetReason let code deep inside a call (the
// password check) give the reason of its outcome to the layer that writes
// the line.
package audit
