package rrd

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// errCrash is returned by crashOps from the simulated crash on.
var errCrash = errors.New("simulated crash")

// crashOps is the fileOps of the crash tests, the test-only seam of the
// file-writing code: a crash in the middle of a flush, a write torn by
// it and the loss of what was not synced cannot be caused otherwise. It
// fails its failAt-th call (from 1; 0: never): a write is torn there (its
// first half reaches the file), and every later call fails too, as in a
// process that died; with ioError set only that call fails, as on an I/O
// error. It remembers what each write or truncation not yet synced
// replaced, so that lose can simulate a power loss after the crash. Syncs
// are not done: the files of a test stay in the page cache anyway.
type crashOps struct {
	failAt  int
	ioError bool
	// match, if set, makes failAt count only the calls whose "op file"
	// starts with it ("write .journal").
	match string

	mu      sync.Mutex // guards the fields below
	calls   []string   // "op file" of every call
	matched int        // calls that match
	undo    []undoRec  // unsynced changes, oldest first
}

// undoRec is what one unsynced write (n > 0) or truncation (n == 0)
// replaced.
type undoRec struct {
	path string
	off  int64
	n    int64  // bytes written
	old  []byte // the bytes replaced, as far as the file had them
	size int64  // of the file before
}

var _ fileOps = (*crashOps)(nil)

// call records a call and reports whether it crashes: at (failAt) or
// after (a dead process). c.mu must be held.
func (c *crashOps) call(op string, path string) (at, after bool) {
	call := op + " " + filepath.Base(path)
	c.calls = append(c.calls, call)
	if strings.HasPrefix(call, c.match) {
		c.matched++
	}
	n := c.matched
	if c.failAt == 0 || n < c.failAt {
		return false, false
	}
	if n == c.failAt {
		return true, false
	}
	return false, !c.ioError
}

// remember saves what n bytes at off of path replace. c.mu must be held.
func (c *crashOps) remember(path string, off, n int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	u := undoRec{path: path, off: off, n: n, size: fi.Size()}
	end := fi.Size() // a truncation to off: what it cuts
	if n > 0 {
		end = min(off+n, fi.Size())
	}
	if end > off {
		u.old = make([]byte, end-off)
		if _, err := f.ReadAt(u.old, off); err != nil {
			return err
		}
	}
	c.undo = append(c.undo, u)
	return nil
}

func (c *crashOps) writeAt(f *os.File, b []byte, off int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, after := c.call("write", f.Name())
	if after || at && c.ioError {
		return errCrash
	}
	if at {
		b = b[:len(b)/2] // torn
	}
	if err := c.remember(f.Name(), off, int64(len(b))); err != nil {
		return err
	}
	if err := (osOps{}).writeAt(f, b, off); err != nil {
		return err
	}
	if at {
		return errCrash
	}
	return nil
}

func (c *crashOps) truncate(f *os.File, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, after := c.call("truncate", f.Name()); at || after {
		return errCrash
	}
	if err := c.remember(f.Name(), size, 0); err != nil {
		return err
	}
	return f.Truncate(size)
}

func (c *crashOps) synced(op string, f *os.File) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, after := c.call(op, f.Name()); at || after {
		return errCrash
	}
	kept := c.undo[:0]
	for _, u := range c.undo {
		if u.path != f.Name() {
			kept = append(kept, u)
		}
	}
	c.undo = kept
	return nil
}

func (c *crashOps) sync(f *os.File) error     { return c.synced("sync", f) }
func (c *crashOps) datasync(f *os.File) error { return c.synced("datasync", f) }

func (c *crashOps) rename(oldpath, newpath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, after := c.call("rename", newpath); at || after {
		return errCrash
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	// what was not synced of the file is still lost after a power loss
	kept := c.undo[:0]
	for _, u := range c.undo {
		if u.path == newpath {
			continue // replaced
		}
		if u.path == oldpath {
			u.path = newpath
		}
		kept = append(kept, u)
	}
	c.undo = kept
	return nil
}

// lossMode is what a power loss after the crash does to the changes not
// synced.
type lossMode int

const (
	loseNone lossMode = iota // only the process died: the page cache is written
	loseAll                  // none reached the disk
	loseSome                 // every other one reached the disk
	tearAll                  // the writes reached it in part, their first half
)

func (m lossMode) String() string {
	return [...]string{"process crash", "power loss", "partial power loss", "torn writes"}[m]
}

// lose undoes the unsynced changes as a power loss of mode m would.
func (c *crashOps) lose(t testing.TB, m lossMode) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		var keep int64 // bytes of the change that stay
		switch {
		case m == loseNone, m == loseSome && i%2 == 1, m == tearAll && u.n == 0:
			continue
		case m == tearAll:
			keep = u.n / 2
		}
		f, err := os.OpenFile(u.path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // renamed or removed since
		}
		if err != nil {
			t.Fatal(err)
		}
		if keep < int64(len(u.old)) {
			if _, err := f.WriteAt(u.old[keep:], u.off+keep); err != nil {
				t.Fatal(err)
			}
		}
		fi, _ := f.Stat()
		if size := max(u.size, u.off+keep); fi.Size() > size && (u.n == 0 || fi.Size() == u.off+u.n) {
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	c.undo = nil
}

func (c *crashOps) steps() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// toV1 converts a file of schema sc to format version 1.
func toV1(b []byte, sc *Schema) []byte {
	m := sc.layout.meta - metaSumSize
	v1 := append(bytes.Clone(b[:m]), b[sc.layout.meta:]...)
	le.PutUint16(v1[6:], version1)
	return le.AppendUint32(v1, crc32.Checksum(v1, crcTable))
}

// crashRecords are deterministic records of the series of the crash
// tests at time tm.
func crashRecord(key string, tm int64) string {
	switch {
	case strings.HasPrefix(key, "pve-vm-9.0/"):
		return vmRecord(tm)
	case strings.HasPrefix(key, "pve-node-9.0/"):
		n := (tm - t0) * 100
		return fmt.Sprintf("3600::%d:%d:8:0.1:0.01:100:50:10:5:1000:500:%d:%d:40:0:0.1:0.2:0.3:0.4:0.5", tm, tm/10%7, n, 2*n)
	default:
		return fmt.Sprintf("%d:1000:%d", tm, (tm-t0)%1000)
	}
}

func updateAll(t testing.TB, s *Store, from, to int64, keys ...string) {
	t.Helper()
	for tm := from; tm < to; tm += 10 {
		for _, k := range keys {
			if err := s.UpdateRecord(k, crashRecord(k, tm)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// answersOrMissing is answers, or "missing" for a series the store does
// not have.
func answersOrMissing(t testing.TB, s *Store, key string) string {
	t.Helper()
	var nf *NotFoundError
	if _, err := s.Query(key, Hour, Average); errors.As(err, &nf) {
		return "missing"
	}
	return answers(t, s, key)
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crash drops s as a crash would: no final flush.
func crash(s *Store) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// noBadFiles fails if a file was set aside under dir.
func noBadFiles(t testing.TB, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".bad") {
			t.Errorf("file set aside: %s", p)
		}
		return nil
	})
}

// The series of TestStoreCrashAtEveryStep, storages for small files: the
// journal does not depend on the schema (TestStoreMatchesSeries checks
// each).
const (
	crashWrap    = "pve-storage-9.0/pve1/a"     // in place, its rows wrap around the ring; then whole, after 40 days
	crashStorage = "pve-storage-9.0/pve1/b"     // in place
	crashOld     = "pve-storage-9.0/pve1/c"     // a version 1 file: rewritten whole, then in place
	crashNew     = "pve-storage-9.0/pve2/local" // created by the first flush (and its directory), in place by the second
	crashIdle    = "pve-storage-9.0/pve1/idle"  // not changed
)

var crashKeys = []string{crashWrap, crashStorage, crashOld, crashNew, crashIdle}

// Times of TestStoreCrashAtEveryStep: the base runs up to mid, the first
// flush writes up to end (the day ends at t0+105 min), the second the
// guest 40 days later (gapEnd) and the others up to end2.
const (
	crashMid    = t0 + 100*60
	crashEnd    = crashMid + 30*60
	crashEnd2   = crashEnd + 10*60
	crashGapEnd = crashEnd + 40*86400 + 3600
)

// crashFlushes runs the two flushes of TestStoreCrashAtEveryStep on s,
// with done called after each; it stops at the first flush that fails
// and returns how many succeeded.
func crashFlushes(t testing.TB, s *Store, done func()) int {
	t.Helper()
	updateAll(t, s, crashMid, crashEnd, crashWrap, crashStorage, crashOld, crashNew)
	if err := s.Flush(); err != nil {
		return 0
	}
	done()
	updateAll(t, s, crashEnd, crashEnd2, crashStorage, crashOld, crashNew)
	updateAll(t, s, crashGapEnd-3600, crashGapEnd, crashWrap)
	if err := s.Flush(); err != nil {
		return 1
	}
	done()
	return 2
}

// crashFiles returns the files of the series of dir ("" for a missing
// one).
func crashFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range crashKeys {
		b, err := os.ReadFile(filepath.Join(dir, k))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		m[k] = string(b)
	}
	return m
}

// TestStoreCrashAtEveryStep runs two flushes and interrupts them at each
// of their steps, with each kind of loss of what was not synced, and
// expects every file, once the store is open again, to be byte for byte
// as before the interrupted flush or as after it (the files changed in
// place by one flush all alike: one journal), and the store to go on.
// The first flush changes two series in place, converts a version 1 file
// and creates a series; the second writes a series whole that the first
// changed in place, and the others in place. TestStoreMatchesSeries
// checks that the files a flush writes answer right.
func TestStoreCrashAtEveryStep(t *testing.T) {
	c := &clock{}
	c.set(crashGapEnd + 5)
	base := t.TempDir()
	s := openStore(t, base, c, Options{})
	updateAll(t, s, t0, crashMid, crashWrap, crashStorage, crashOld, crashIdle)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	oldFile, _ := os.ReadFile(s.Path(crashOld))
	if err := os.WriteFile(s.Path(crashOld), toV1(oldFile, StorageSchema), 0o640); err != nil {
		t.Fatal(err)
	}

	// the files before, between and after the flushes, and their steps
	dir := t.TempDir()
	copyDir(t, base, dir)
	s = openStore(t, dir, c, Options{})
	ops := &crashOps{}
	s.ops, s.workers = ops, 1
	states := []map[string]string{crashFiles(t, dir)}
	var flushSteps []int
	crashFlushes(t, s, func() {
		states = append(states, crashFiles(t, dir))
		flushSteps = append(flushSteps, len(ops.steps()))
	})
	crash(s)
	for _, k := range crashKeys[:4] {
		if states[0][k] == states[1][k] || states[1][k] == states[2][k] {
			t.Fatalf("%s: a flush leaves the file as it was", k)
		}
	}
	steps := ops.steps()
	t.Logf("the flushes take %d and %d steps: %s", flushSteps[0], len(steps)-flushSteps[0], strings.Join(steps, ", "))

	// n == len(steps): the power fails after both flushes
	inPlace := [][]string{{crashWrap, crashStorage}, {crashStorage, crashOld, crashNew}}
	for n := range len(steps) + 1 {
		step := "none, after the flushes"
		if n < len(steps) {
			step = steps[n]
		}
		flush := 2
		if n < flushSteps[0] {
			flush = 1
		}
		for _, m := range []lossMode{loseNone, loseAll, loseSome, tearAll} {
			what := fmt.Sprintf("crash at step %d of flush %d (%s), %v", n+1, flush, step, m)
			// the store goes on after a restart: checked for some
			goOn := m == loseAll || m == tearAll
			crashAt(t, what, base, c, n+1, m, states[flush-1:flush+1], inPlace[flush-1], goOn)
		}
	}
}

// crashAt runs the flushes of TestStoreCrashAtEveryStep on a copy of
// base, crashes at step n, loses what m loses and checks the files after
// a restart: each is as in one of want (before and after the interrupted
// flush), those the flush changes in place all alike. With goOn set, the
// store must take more updates and flush them.
func crashAt(t *testing.T, what, base string, c *clock, n int, m lossMode, want []map[string]string, inPlace []string, goOn bool) {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, base, dir)
	s := openStore(t, dir, c, Options{})
	ops := &crashOps{failAt: n}
	s.ops, s.workers = ops, 1
	done := crashFlushes(t, s, func() {})
	if crashed := len(ops.steps()) >= n; crashed && done == 2 || !crashed && done != 2 {
		t.Fatalf("%s: %d flushes done in %d steps", what, done, len(ops.steps()))
	}
	crash(s)
	ops.lose(t, m)

	s2, err := Open(Options{Dir: dir, Now: c.now, FlushInterval: -1})
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	got := crashFiles(t, dir)
	outcome := map[string]int{}
	for _, k := range crashKeys {
		switch got[k] {
		case want[1][k]:
			outcome[k] = 1
		case want[0][k]:
		default:
			t.Errorf("%s: the file of %s is neither as before nor as after the flush", what, k)
		}
	}
	for _, k := range inPlace[1:] {
		if outcome[k] != outcome[inPlace[0]] {
			t.Errorf("%s: %s is as %s the flush, %s as %s; want both alike", what,
				k, [2]string{"before", "after"}[outcome[k]], inPlace[0], [2]string{"before", "after"}[outcome[inPlace[0]]])
		}
	}
	for _, k := range crashKeys {
		if _, err := s2.Query(k, Hour, Average); err != nil && got[k] != "" {
			t.Errorf("%s: %s: %v", what, k, err)
		}
	}
	if goOn {
		updateAll(t, s2, crashGapEnd+600, crashGapEnd+1200, crashKeys[:4]...)
		if err := s2.Close(); err != nil {
			t.Fatalf("%s: Close after restart: %v", what, err)
		}
		s3 := openStore(t, dir, c, Options{})
		for _, k := range crashKeys {
			if _, err := s3.Query(k, Hour, Average); err != nil {
				t.Errorf("%s: %s after another flush: %v", what, k, err)
			}
		}
		s3.Close()
	} else {
		s2.Close()
	}
	noBadFiles(t, dir)
	if t.Failed() {
		t.FailNow()
	}
}

// TestStoreCrashDuringRecovery crashes Open while it applies the journal
// of a crashed flush, at each step and with each loss, and expects the
// next Open to finish the job.
func TestStoreCrashDuringRecovery(t *testing.T) {
	c := &clock{}
	base := t.TempDir()
	keys := []string{"pve-vm-9.0/100", "pve-storage-9.0/pve1/local"}
	s := openStore(t, base, c, Options{})
	updateAll(t, s, t0, t0+3600, keys...)
	s.Close()
	c.set(t0 + 5400)
	// a flush that crashes just after its journal is synced: every file
	// write is lost
	s = openStore(t, base, c, Options{})
	updateAll(t, s, t0+3600, t0+5400, keys...)
	var after []string
	for _, k := range keys {
		after = append(after, answers(t, s, k))
	}
	ops := &crashOps{failAt: 4} // truncate, write, sync the journal; then the first file
	s.ops, s.workers = ops, 1
	if err := s.Flush(); !errors.Is(err, errCrash) {
		t.Fatalf("Flush = %v; want the crash", err)
	}
	crash(s)
	ops.lose(t, loseAll)
	if st := ops.steps(); !strings.HasSuffix(st[2], journalName) || !strings.HasPrefix(st[2], "sync") {
		t.Fatalf("third step %q; want the sync of the journal", st[2])
	}

	// count the steps of the recovery
	probe := &crashOps{}
	{
		dir := t.TempDir()
		copyDir(t, base, dir)
		r := &Store{dir: dir, log: slog.New(slog.DiscardHandler), ops: probe}
		if err := r.replayJournal(); err != nil {
			t.Fatal(err)
		}
	}
	steps := probe.steps()
	if len(steps) < 5 {
		t.Fatalf("recovery in %d steps: %v", len(steps), steps)
	}
	for n := range steps {
		for _, m := range []lossMode{loseNone, loseAll, loseSome, tearAll} {
			what := fmt.Sprintf("crash at recovery step %d (%s), %v", n+1, steps[n], m)
			dir := t.TempDir()
			copyDir(t, base, dir)
			ops := &crashOps{failAt: n + 1}
			r := &Store{dir: dir, log: slog.New(slog.DiscardHandler), ops: ops}
			if err := r.replayJournal(); !errors.Is(err, errCrash) {
				t.Fatalf("%s: replay = %v; want the crash", what, err)
			}
			ops.lose(t, m)
			s := openStore(t, dir, c, Options{})
			for i, k := range keys {
				if got := answers(t, s, k); got != after[i] {
					t.Errorf("%s: %s does not answer as after the flush", what, k)
				}
			}
			s.Close()
			if b, _ := os.ReadFile(filepath.Join(dir, journalName)); len(b) != 0 {
				t.Errorf("%s: journal of %d bytes left after Open", what, len(b))
			}
		}
	}
}

// TestStoreJournalKept: a flush that cannot write all its files keeps its
// journal, and the next flush applies it before it writes a new one, so
// that a crash then cannot leave a file half written by the first.
func TestStoreJournalKept(t *testing.T) {
	c := &clock{}
	dir := t.TempDir()
	keys := []string{"pve-storage-9.0/pve1/a", "pve-storage-9.0/pve1/b"}
	s := openStore(t, dir, c, Options{})
	updateAll(t, s, t0, t0+600, keys...)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	updateAll(t, s, t0+600, t0+1200, keys...)
	c.set(t0 + 1205)
	var want []string // as after the failing flush
	for _, k := range keys {
		want = append(want, answers(t, s, k))
	}
	// an I/O error at the second write to the first file: its meta
	// region is new, its rows not
	ops := &crashOps{match: "write a", failAt: 2, ioError: true}
	s.ops, s.workers = ops, 1
	if err := s.Flush(); !errors.Is(err, errCrash) {
		t.Fatalf("Flush = %v; want the I/O error", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, journalName)); len(b) == 0 || !s.journalDirty {
		t.Fatal("journal emptied although a file was not written")
	}
	// the next flush crashes while it writes its journal
	updateAll(t, s, t0+1200, t0+1800, keys...)
	ops = &crashOps{match: "write .journal", failAt: 1}
	s.ops = ops
	if err := s.Flush(); !errors.Is(err, errCrash) {
		t.Fatalf("Flush = %v; want the crash", err)
	}
	crash(s)
	s2 := openStore(t, dir, c, Options{})
	for i, k := range keys {
		if got := answers(t, s2, k); got != want[i] {
			t.Errorf("%s does not answer as after the flush that failed", k)
		}
	}
	// and then it goes on
	updateAll(t, s2, t0+1800, t0+2400, keys...)
	c.set(t0 + 2405)
	var live []string
	for _, k := range keys {
		live = append(live, answers(t, s2, k))
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, dir, c, Options{})
	defer s3.Close()
	for i, k := range keys {
		if got := answers(t, s3, k); got != live[i] {
			t.Errorf("%s answers differently after a restart", k)
		}
	}
	noBadFiles(t, dir)
}

// TestStoreMatchesSeries feeds the same readings to a Store, flushed at
// odd moments and reopened, and to Series in memory, and expects the same
// answers: the rows written in place land where they belong, across ring
// wraps, gaps, and a gap of 40 days that makes the flush write the files
// whole.
func TestStoreMatchesSeries(t *testing.T) {
	c := &clock{}
	dir := t.TempDir()
	keys := []string{"pve-vm-9.0/100", "pve-storage-9.0/pve1/local", "pve-node-9.0/pve1"}
	series := map[string]*Series{}
	s := openStore(t, dir, c, Options{})
	rnd := rand.New(rand.NewPCG(1, 2))
	tm := int64(t0)
	feed := func(tm int64) {
		for _, k := range keys {
			sc, _ := splitKey(k)
			if series[k] == nil {
				series[k] = NewSeries(sc, tm-sc.maxHB-1)
			}
			_, t1, vals, err := ParseBroadcast(k, crashRecord(k, tm))
			if err != nil {
				t.Fatal(err)
			}
			if err := series[k].Update(t1, vals); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateRecord(k, crashRecord(k, tm)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string) {
		t.Helper()
		c.set(tm + 5)
		for _, k := range keys {
			for _, tf := range []Timeframe{Hour, Day, Week, Month, Year} {
				for _, cf := range []CF{Average, Max} {
					want, _ := series[k].Query(tf, cf, tm+5)
					got, err := s.Query(k, tf, cf)
					if err != nil {
						t.Fatal(err)
					}
					if g, w := got.AppendJSON(nil), want.AppendJSON(nil); !bytes.Equal(g, w) {
						t.Fatalf("%s: %s %s %s differs from the series in memory", when, k, tf, cf)
					}
				}
			}
		}
	}
	for day := range 3 {
		for end := tm + 86400; tm < end; tm += 10 {
			if tm%3600 > 3300 && day == 1 {
				continue // gaps of 5 minutes every hour
			}
			feed(tm)
			if rnd.IntN(200) == 0 {
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, c, Options{})
		check(fmt.Sprintf("day %d", day))
	}
	tm += 40 * 86400
	for end := tm + 3600; tm < end; tm += 10 {
		feed(tm)
	}
	for _, k := range keys { // the journal record would be too large
		s.mu.Lock()
		e := s.series[k]
		s.mu.Unlock()
		e.mu.Lock()
		if n := int64(len(e.record())); n <= e.schema.layout.size/4 {
			t.Errorf("%s: journal record of %d bytes after 40 days; want more than a quarter of the file", k, n)
		}
		e.mu.Unlock()
	}
	ino := func(k string) uint64 {
		fi, err := os.Stat(s.Path(k))
		if err != nil {
			t.Fatal(err)
		}
		return fileID(fi)
	}
	before := ino(keys[0])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ino(keys[0]) == before {
		t.Error("the file was changed in place; want it written whole")
	}
	s = openStore(t, dir, c, Options{})
	defer s.Close()
	check("after 40 days")
	noBadFiles(t, dir)
}

func TestDecodeJournal(t *testing.T) {
	rb := newRecord("pve-storage-9.0/pve1/local", StorageSchema.FileSize(), 64)
	copy(rb.extent(100, 8), "abcdefgh")
	copy(rb.extent(StorageSchema.FileSize()-4, 4), "wxyz")
	good := encodeJournal([][]byte{rb.bytes(), rb.bytes()})
	recs, err := decodeJournal(good)
	if err != nil || len(recs) != 2 || len(recs[1].ext) != 2 || string(recs[1].ext[1].data) != "wxyz" {
		t.Fatalf("decodeJournal = %v, %v", recs, err)
	}
	if recs, err := decodeJournal(nil); err != nil || len(recs) != 0 {
		t.Errorf("empty journal: %v, %v", recs, err)
	}
	outside := newRecord("pve-storage-9.0/pve1/local", 100, 8)
	outside.extent(96, 8)
	for name, b := range map[string][]byte{
		"torn":           good[:len(good)/2],
		"torn at header": good[:10],
		"bit flip":       func() []byte { b := bytes.Clone(good); b[40] ^= 1; return b }(),
		"longer":         append(bytes.Clone(good), 0),
		"extent outside": encodeJournal([][]byte{outside.bytes()}),
	} {
		if _, err := decodeJournal(b); !errors.Is(err, errJournal) {
			t.Errorf("%s: decodeJournal error = %v; want errJournal", name, err)
		}
	}
}

func fileID(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
