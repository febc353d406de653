package loginguard

import (
	"strconv"
	"strings"
	"unicode"
)

// LineKey, as an attribute of a log record (any value), marks the record's
// message as a line that other programs parse: the daemons' logger
// (pkg/daemon) writes it as it is, without level, time or attributes, under
// the daemon's syslog tag, at the syslog priority of the record's level
// (slog.LevelError: err). FailureLine's lines are logged so, at
// slog.LevelError, for fail2ban.
const LineKey = "syslog_line"

// FailureLine returns PVE's syslog line for a failed login:
//
//	authentication failure; rhost=<client address> user=<user id> msg=<reason>
//
// PVE writes it at priority err from pvedaemon, whose tag fail2ban's
// "proxmox" filter expects. Control characters in user and msg (which the
// client chooses in part) are escaped as in a Go string literal, so that the
// line stays one line and nobody can forge a second one for another rhost.
func FailureLine(rhost, user, msg string) string {
	return "authentication failure; rhost=" + rhost + " user=" + escape(user) + " msg=" + escape(msg)
}

// escape quotes the control characters of s Go-style and leaves the rest.
func escape(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
