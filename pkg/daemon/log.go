package daemon

import (
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// newLogger returns a text logger writing to w. With noTime the time
// attribute is left out (journald and syslog stamp records themselves).
func newLogger(w io.Writer, debug, noTime bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	if noTime {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// stderrIsJournal reports whether stderr is the journald stream systemd
// connected, by comparing $JOURNAL_STREAM ("<dev>:<inode>") with fstat(2).
func stderrIsJournal(journalStream string) bool {
	devStr, inoStr, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(devStr, 10, 64)
	ino, err2 := strconv.ParseUint(inoStr, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(os.Stderr.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// daemonLogger picks the log destination of a foreground process: syslog
// (tagged name) for a daemonized child whose stderr is /dev/null, else stderr.
// The returned close function releases the syslog connection.
func daemonLogger(name string, stderr io.Writer, daemonized, debug bool) (*slog.Logger, func()) {
	if daemonized {
		prio := syslog.LOG_DAEMON | syslog.LOG_INFO
		if w, err := syslog.New(prio, name); err == nil {
			return newLogger(w, debug, true), func() { w.Close() }
		}
		return newLogger(stderr, debug, false), func() {}
	}
	return newLogger(stderr, debug, stderrIsJournal(os.Getenv("JOURNAL_STREAM"))), func() {}
}
