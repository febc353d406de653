package tasks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pvenode/pvenode/pkg/lockfile"
)

// File names and limits below the root, as in pve-common
// (RESTEnvironment::active_workers, INotify active file).
const (
	activeName   = "active"
	indexName    = "index"
	lockName     = ".active.lock"
	indexMaxSize = 50000 // index is renamed to index.1 beyond this size
	maxFinished  = 25    // active keeps running + recent finished, at most 25
	lockTimeout  = 10 * time.Second
)

// Status strings of PVE::UPID::read_status.
const (
	StatusOK         = "OK"
	StatusUnexpected = "unexpected status"
	StatusInterrupt  = "received interrupt" // the worker's TERM handler dies with this
	StatusRunning    = "RUNNING"            // what the task list shows for active entries
)

// entry is one line of the active file or of the index.
type entry struct {
	raw     string // the UPID as written
	u       UPID
	saved   bool
	endtime int64
	status  string
}

// Active file line (INotify::read_active_workers).
var activeLineRe = regexp.MustCompile(`^(\S+)\s(0|1)(\s([0-9A-Za-z]{8})(\s(\s*\S.*))?)?$`)

// Index line (API2::Tasks node_tasks).
var indexLineRe = regexp.MustCompile(`^(\S+)(\s([0-9A-Za-z]{8})(\s(\S.*))?)?$`)

func hexTime(s string) int64 {
	v, _ := strconv.ParseUint(s, 16, 32)
	return int64(v)
}

// parseActive parses the active file; lines that do not parse are skipped,
// as PVE does (it warns).
func parseActive(data []byte) []entry {
	var res []entry
	for _, line := range splitLines(data) {
		m := activeLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		u, err := Parse(m[1])
		if err != nil {
			continue
		}
		e := entry{raw: m[1], u: u, saved: m[2] == "1", status: m[6]}
		if m[4] != "" {
			e.endtime = hexTime(m[4])
		}
		res = append(res, e)
	}
	return res
}

func formatActive(list []entry) []byte {
	var b bytes.Buffer
	for _, e := range list {
		saved := 0
		if e.saved {
			saved = 1
		}
		switch {
		case e.endtime != 0 && e.status != "":
			fmt.Fprintf(&b, "%s %d %08X %s\n", e.raw, saved, e.endtime, e.status)
		case e.endtime != 0:
			fmt.Fprintf(&b, "%s %d %08X\n", e.raw, saved, e.endtime)
		default:
			fmt.Fprintf(&b, "%s %d\n", e.raw, saved)
		}
	}
	return b.Bytes()
}

func parseIndexLine(line string) (entry, bool) {
	m := indexLineRe.FindStringSubmatch(line)
	if m == nil {
		return entry{}, false
	}
	u, err := Parse(m[1])
	if err != nil {
		return entry{}, false
	}
	e := entry{raw: m[1], u: u, status: m[5]}
	if m[3] != "" {
		e.endtime = hexTime(m[3])
	}
	return e, true
}

// splitLines splits like Perl's line reading with chomp: a last line
// without newline still counts, a final newline does not start a line.
func splitLines(data []byte) []string {
	s := string(data)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lockFile takes an exclusive flock on path, polling up to the timeout.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	return lockfile.Lock(path, timeout)
}

// writeAtomic replaces path with data: temp file, fsync, rename.
func writeAtomic(path string, data []byte, perm fs.FileMode) error {
	return lockfile.WriteAtomic(path, data, perm)
}

// appendIndex appends data to the index and rotates it to index.1 when it
// has grown beyond indexMaxSize.
func appendIndex(root string, data []byte) error {
	name := filepath.Join(root, indexName)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("unable to open file '%s' - %w", name, err)
	}
	_, err = f.Write(data)
	var size int64
	if err == nil {
		var fi fs.FileInfo
		if fi, err = f.Stat(); err == nil {
			size = fi.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write to '%s' failed - %w", name, err)
	}
	if size > indexMaxSize {
		return os.Rename(name, name+".1")
	}
	return nil
}

// readLastLine returns the last line of a file, ignoring one final newline
// (PVE::File::file_read_last_line); ok is false when the file does not exist.
func readLastLine(path string) (line string, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, nil
		}
		return "", true, fmt.Errorf("file '%s' exists but open for reading failed - %s", path, strerror(err))
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", true, err
	}
	const chunk = 4096
	var buf []byte
	pos := end
	for pos > 0 {
		n := int64(chunk)
		if pos < n {
			n = pos
		}
		pos -= n
		tmp := make([]byte, n)
		if _, err := f.ReadAt(tmp, pos); err != nil && err != io.EOF {
			return "", true, err
		}
		first := len(buf) == 0 && pos+n == end
		buf = append(tmp, buf...)
		if first && len(buf) > 0 && buf[len(buf)-1] == '\n' {
			buf = buf[:len(buf)-1]
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			return string(buf[i+1:]), true, nil
		}
		if len(buf) > 1<<20 { // pathological: a megabyte without newline
			break
		}
	}
	return string(buf), true, nil
}

// strerror renders an OS error the way Perl's $! does ("No such file or
// directory"): glibc's message with its capital first letter.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		if s != "" {
			return strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return err.Error()
}

// procStat reads the start time (clock ticks since boot, field 22) and
// the state (field 3) of a process from <proc>/<pid>/stat.
func procStat(proc string, pid string) (start uint64, state byte, err error) {
	data, err := os.ReadFile(filepath.Join(proc, pid, "stat"))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, errors.New("malformed stat")
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0][0], err
}

// ProcessRunning reports whether process pid exists, is not a zombie and,
// when pstart is not zero, started at pstart
// (PVE::ProcFSTools::check_process_running).
func ProcessRunning(pid int, pstart uint64) bool {
	if pid <= 0 {
		return false
	}
	st, state, err := procStat("/proc", strconv.Itoa(pid))
	if err != nil {
		return false
	}
	return (pstart == 0 || st == pstart) && state != 'Z'
}

// SelfStartTime returns this process's start time in clock ticks since boot,
// the pstart PVE puts into a UPID.
func SelfStartTime() (uint64, error) {
	st, _, err := procStat("/proc", "self")
	return st, err
}

// readerLines iterates the lines of r like Perl's <$fh> with chomp.
func readerLines(r io.Reader, fn func(line string) bool) error {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			if !fn(strings.TrimSuffix(line, "\n")) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
