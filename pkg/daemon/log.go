package daemon

import (
	"context"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pvenode/pvenode/pkg/loginguard"
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
// The returned close function releases the syslog connection. Records
// marked with loginguard.LineKey are written as bare lines (see lineHandler).
func daemonLogger(name string, stderr io.Writer, daemonized, debug bool) (*slog.Logger, func()) {
	if daemonized {
		prio := syslog.LOG_DAEMON | syslog.LOG_INFO
		if w, err := syslog.New(prio, name); err == nil {
			return withLines(newLogger(w, debug, true), syslogLine(w)), func() { w.Close() }
		}
		return withLines(newLogger(stderr, debug, false), stderrLine(stderr, false)), func() {}
	}
	journal := stderrIsJournal(os.Getenv("JOURNAL_STREAM"))
	return withLines(newLogger(stderr, debug, journal), stderrLine(stderr, journal)), func() {}
}

// syslogLine writes a line to syslog at the priority of level.
func syslogLine(w *syslog.Writer) func(slog.Level, string) {
	return func(level slog.Level, msg string) {
		switch {
		case level >= slog.LevelError:
			_ = w.Err(msg)
		case level >= slog.LevelWarn:
			_ = w.Warning(msg)
		case level >= slog.LevelInfo:
			_ = w.Info(msg)
		default:
			_ = w.Debug(msg)
		}
	}
}

// stderrLine writes a line to w; for the journal, after the "<N>" prefix
// that gives journald the priority of level.
func stderrLine(w io.Writer, journal bool) func(slog.Level, string) {
	return func(level slog.Level, msg string) {
		prefix := ""
		if journal {
			switch {
			case level >= slog.LevelError:
				prefix = "<3>"
			case level >= slog.LevelWarn:
				prefix = "<4>"
			case level >= slog.LevelInfo:
				prefix = "<6>"
			default:
				prefix = "<7>"
			}
		}
		_, _ = io.WriteString(w, prefix+msg+"\n")
	}
}

// withLines makes l write records marked with loginguard.LineKey through
// line.
func withLines(l *slog.Logger, line func(slog.Level, string)) *slog.Logger {
	return slog.New(lineHandler{Handler: l.Handler(), line: line})
}

// lineHandler writes the message of a record that has the attribute
// loginguard.LineKey as it is, without level, time or attributes, at the
// syslog priority of the record's level (err for slog.LevelError): lines
// that other programs parse, such as PVE's "authentication failure;
// rhost=..." that fail2ban reads, under the daemon's own syslog tag. A
// newline in the message is written as "\n", as fail2ban shows it, so that
// one record stays one line. Other records go to the wrapped handler.
type lineHandler struct {
	slog.Handler
	line func(slog.Level, string)
}

func (h lineHandler) Handle(ctx context.Context, r slog.Record) error {
	marked := false
	r.Attrs(func(a slog.Attr) bool {
		marked = a.Key == loginguard.LineKey
		return !marked
	})
	if !marked {
		return h.Handler.Handle(ctx, r)
	}
	h.line(r.Level, strings.ReplaceAll(r.Message, "\n", `\n`))
	return nil
}

func (h lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return lineHandler{Handler: h.Handler.WithAttrs(as), line: h.line}
}

func (h lineHandler) WithGroup(name string) slog.Handler {
	return lineHandler{Handler: h.Handler.WithGroup(name), line: h.line}
}
