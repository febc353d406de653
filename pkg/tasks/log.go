package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unicode/utf8"
)

// ErrLogClosed is returned by writes to the log of a finished task.
var ErrLogClosed = errors.New("task log closed")

// Log is the output of one task, written to its log file line by line. Each
// complete line is written with one write(2) on an unbuffered file, so
// readers (ReadLog, Status) see the progress at once; they never take the
// Log's lock. A line longer than the Manager's maximum is split into
// several lines (at a UTF-8 boundary), so no line in the file exceeds it.
// A Log is safe for concurrent use and is an io.Writer, e.g. for a
// command's stdout and stderr.
type Log struct {
	mu       sync.Mutex
	f        *os.File
	upid     UPID
	max      int
	partial  []byte
	warnings int
	closed   bool
	err      error // first write error; later writes are dropped
}

// UPID is the task's id.
func (l *Log) UPID() UPID { return l.upid }

// Write appends p; text after the last newline is kept until the next
// newline (or the end of the task).
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrLogClosed
	}
	n := len(p)
	var out []byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.partial = append(l.partial, p...)
			for len(l.partial) > l.max {
				k := cut(l.partial, l.max)
				out = append(append(out, l.partial[:k]...), '\n')
				l.partial = append(l.partial[:0], l.partial[k:]...)
			}
			break
		}
		out = l.appendLine(out, append(l.partial, p[:i]...))
		l.partial = l.partial[:0]
		p = p[i+1:]
	}
	l.write(out)
	return n, nil
}

// Printf writes one formatted message; a newline is added if missing.
func (l *Log) Printf(format string, a ...any) {
	l.print(fmt.Sprintf(format, a...))
}

// Print writes its operands like fmt.Sprint, then a newline if missing.
func (l *Log) Print(a ...any) {
	l.print(fmt.Sprint(a...))
}

func (l *Log) print(s string) {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	l.Write([]byte(s))
}

// Warn logs "WARN: <msg>" and counts a warning; a task that ends without
// error after n warnings has the status "WARNINGS: n"
// (PVE::RESTEnvironment::warn).
func (l *Log) Warn(msg string) {
	msg = strings.TrimSuffix(msg, "\n")
	l.mu.Lock()
	if !l.closed {
		l.warnings++
	}
	l.mu.Unlock()
	l.print("WARN: " + msg)
}

// Warnf is Warn with a format.
func (l *Log) Warnf(format string, a ...any) { l.Warn(fmt.Sprintf(format, a...)) }

// Warnings is the number of warnings logged so far.
func (l *Log) Warnings() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.warnings
}

// appendLine appends line and its newline to out, split at the maximum.
func (l *Log) appendLine(out, line []byte) []byte {
	for len(line) > l.max {
		k := cut(line, l.max)
		out = append(append(out, line[:k]...), '\n')
		line = line[k:]
	}
	return append(append(out, line...), '\n')
}

// cut returns where to split b so that b[:k] is at most max bytes and does
// not end inside a UTF-8 sequence (k > 0).
func cut(b []byte, max int) int {
	k := max
	for k > 0 && k > max-utf8.UTFMax && !utf8.RuneStart(b[k]) {
		k--
	}
	if k == 0 || !utf8.RuneStart(b[k]) {
		return max
	}
	return k
}

func (l *Log) write(out []byte) {
	if len(out) == 0 || l.err != nil {
		return
	}
	if _, err := l.f.Write(out); err != nil {
		l.err = err
	}
}

// finish flushes a pending partial line, writes the final "TASK ..." line
// that final computes from the warning count, and closes the file.
func (l *Log) finish(final func(warnings int) string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	if len(l.partial) > 0 {
		out = l.appendLine(out, l.partial)
		l.partial = nil
	}
	out = append(out, final(l.warnings)...)
	out = append(out, '\n')
	l.err = nil // the final line matters most: try it even after an error
	l.write(out)
	l.closed = true
	err := l.err
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
