package rrd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of Options.
const (
	// DefaultDir is where PVE keeps the series (rrdcached's base directory).
	DefaultDir = "/var/lib/rrdcached/db"

	// DefaultFlushInterval is how often changed series are written, as
	// rrdcached's default write timeout.
	DefaultFlushInterval = 5 * time.Minute
	// DefaultMaxSeries bounds the number of series of a Store.
	DefaultMaxSeries = 50000
)

// Errors of a Store.
var (
	// ErrClosed is returned by a Store after Close.
	ErrClosed = errors.New("rrd store closed")
	// ErrTooManySeries is returned for an update that would create a
	// series beyond Options.MaxSeries.
	ErrTooManySeries = errors.New("too many rrd series")
)

// NotFoundError is returned by Query for a series the store does not
// have. Its message is rrdtool's for a missing file.
type NotFoundError struct{ Path string }

func (e *NotFoundError) Error() string {
	return "opening '" + e.Path + "': No such file or directory"
}

// Options configure a Store.
type Options struct {
	// Dir holds the series files, one directory per schema as PVE's
	// /var/lib/rrdcached/db: pve-node-9.0/<node>, pve-vm-9.0/<vmid>,
	// pve-storage-9.0/<node>/<storage>. Required.
	Dir string
	// FlushInterval is how often changed series are written to disk;
	// 0 means DefaultFlushInterval, a negative value no periodic flush
	// (Flush and Close still write).
	FlushInterval time.Duration
	// Retain is how long a series that gets no update is kept before its
	// file is removed; 0 means as long as the longest timeframe PVE shows
	// for its schema (a year for guests and storages, ten years for
	// nodes), after which every answer would be empty; negative keeps
	// series forever, as PVE does.
	Retain time.Duration
	// MaxSeries bounds the number of series; 0 means DefaultMaxSeries.
	MaxSeries int
	// Log receives flush problems; nil discards them.
	Log *slog.Logger
	// Now is the clock of queries and expiry; nil means time.Now.
	Now func() time.Time
}

// Store keeps many series by key under a directory. In memory it holds
// only each series' consolidation state and the rows written since the
// last flush (a few KiB per series); the rows themselves stay in the
// files, which a flush rewrites whole and atomically (temporary file,
// sync, rename): a crash leaves each file as of the last flush before
// it. A Store is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex // guards series and closed
	series map[string]*entry
	closed bool

	flushMu sync.Mutex // serializes flushes

	stop chan struct{} // closed by Close to end the flusher
	done chan struct{} // closed when the flusher ended

	// rename replaces a file; tests replace it to simulate a crash.
	rename func(oldpath, newpath string) error
}

// entry is one series of a Store.
type entry struct {
	mu      sync.Mutex // guards the fields below
	key     string
	path    string
	schema  *Schema
	st      *state        // nil until loaded from the file or created
	onDisk  bool          // the file exists
	mtime   time.Time     // of the file, for expiry before the state is loaded
	pending []pendingRows // per archive (owners only): rows not yet in the file
	gen     uint64        // counts updates, to tell whether a flush caught all
	flushed uint64        // gen the file holds
	removed bool          // expired: the key must be looked up again
}

// pendingRows are consecutive rows of one archive, oldest first.
type pendingRows struct {
	first int64 // end time of the first row
	n     int64
	vals  []float64
}

// Open opens or creates the store in opts.Dir, finds the series it
// holds (loading each lazily, on first use), removes temporary files a
// crash left, and starts the periodic flush.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("rrd store: no directory")
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	s := &Store{dir: opts.Dir, opts: opts, log: opts.Log, now: opts.Now,
		series: map[string]*entry{}, stop: make(chan struct{}), done: make(chan struct{}), rename: os.Rename}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("rrd store: %w", err)
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	if opts.FlushInterval > 0 {
		go s.flusher(opts.FlushInterval)
	} else {
		close(s.done)
	}
	return s, nil
}

// scan registers the series files under the schema directories.
func (s *Store) scan() error {
	for name, sc := range schemas {
		dir := filepath.Join(s.dir, name)
		if sc == StorageSchema {
			nodes, err := os.ReadDir(dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rrd store: %w", err)
			}
			for _, n := range nodes {
				if n.IsDir() && validName(n.Name()) {
					if err := s.scanDir(sc, filepath.Join(dir, n.Name()), name+"/"+n.Name()+"/"); err != nil {
						return err
					}
				}
			}
			continue
		}
		if err := s.scanDir(sc, dir, name+"/"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanDir(sc *Schema, dir, prefix string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rrd store: %w", err)
	}
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-") {
			// a flush that did not complete
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				s.log.Warn("remove temporary file", "path", filepath.Join(dir, name), "err", err)
			}
			continue
		}
		if !de.Type().IsRegular() || !validName(name) {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		key := prefix + name
		s.series[key] = &entry{key: key, path: filepath.Join(dir, name), schema: sc, onDisk: true, mtime: info.ModTime(),
			pending: make([]pendingRows, len(sc.rra))}
	}
	return nil
}

// Path returns the file of the series key.
func (s *Store) Path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

// Keys returns the keys of the series, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	keys := make([]string, 0, len(s.series))
	for k := range s.series {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	return keys
}

// Len returns the number of series.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.series)
}

// lookup returns the entry of key, creating it when create is set.
func (s *Store) lookup(key string, create bool) (*entry, error) {
	sc, err := splitKey(key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	e := s.series[key]
	if e == nil && create {
		if len(s.series) >= s.opts.MaxSeries {
			return nil, fmt.Errorf("series %s: %w (%d)", key, ErrTooManySeries, s.opts.MaxSeries)
		}
		e = &entry{key: key, path: s.Path(key), schema: sc, pending: make([]pendingRows, len(sc.rra))}
		s.series[key] = e
	}
	return e, nil
}

// locked returns the entry of key locked and loaded, or nil when it does
// not exist and create is not set.
func (s *Store) locked(key string, create bool) (*entry, error) {
	for {
		e, err := s.lookup(key, create)
		if err != nil || e == nil {
			return nil, err
		}
		e.mu.Lock()
		if e.removed {
			e.mu.Unlock()
			continue
		}
		s.loadLocked(e)
		if e.st == nil && !create {
			e.mu.Unlock()
			return nil, nil
		}
		return e, nil
	}
}

// loadLocked reads the state of e from its file the first time. A file
// that is not valid is set aside as ".<name>.bad" and the series starts
// anew. e.mu must be held.
func (s *Store) loadLocked(e *entry) {
	if e.st != nil || !e.onDisk {
		return
	}
	b, err := os.ReadFile(e.path)
	if err == nil {
		var sc *Schema
		if sc, err = readSchema(b); err == nil {
			if !sc.equal(e.schema) {
				err = fmt.Errorf("schema differs: %w", ErrCorrupt)
			} else {
				e.st = readState(b, e.schema)
				return
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		e.onDisk = false
		return
	}
	s.log.Error("unusable rrd file set aside", "path", e.path, "err", err)
	if rerr := os.Rename(e.path, filepath.Join(filepath.Dir(e.path), "."+filepath.Base(e.path)+".bad")); rerr != nil {
		s.log.Error("set aside rrd file", "path", e.path, "err", rerr)
	}
	e.onDisk = false
}

// Update applies a reading to the series key ("pve-vm-9.0/100"), creating
// it on its first update: t is Unix seconds after the series' last
// update, vals one value per data source of the schema, NaN unknown.
// A new series behaves as PVE's: it has no data before t, and t's
// reading only serves as the base of the DERIVE rates of the next one.
func (s *Store) Update(key string, t int64, vals []float64) error {
	if sc, err := splitKey(key); err != nil {
		return err
	} else if len(vals) != len(sc.ds) {
		return fmt.Errorf("update %s: expected %d data source readings (got %d)", key, len(sc.ds), len(vals))
	}
	e, err := s.locked(key, true)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.st == nil {
		// PVE creates the file at the start of the day, so that the first
		// reading is past the heartbeat; starting just past the heartbeat
		// gives the same rows without writing a day of unknowns.
		e.st = newState(e.schema, t-e.schema.maxHB-1)
	}
	if err := e.st.update(t, vals, e.add); err != nil {
		return fmt.Errorf("update %s: %w", key, err)
	}
	e.gen++
	return nil
}

// UpdateRecord applies a status record as pvestatd broadcasts it (see
// ParseBroadcast): the gossip layer passes every record it receives.
func (s *Store) UpdateRecord(key, data string) error {
	series, t, vals, err := ParseBroadcast(key, data)
	if err != nil {
		return err
	}
	return s.Update(series, t, vals)
}

// add records a row written by an update. e.mu must be held.
func (e *entry) add(r int, end int64, row []float64) {
	p := &e.pending[r]
	a := e.schema.rra[r]
	rs := e.schema.step * a.Steps
	nds := int64(len(row))
	if p.n > 0 && end != p.first+p.n*rs {
		// rows are consecutive except after a gap longer than the
		// archive, whose rows then replace every pending one
		p.n, p.vals = 0, p.vals[:0]
	}
	if p.n == 0 {
		p.first = end
	}
	if p.n == a.Rows { // more than the archive holds: drop the oldest
		p.vals = p.vals[nds:]
		p.first += rs
		p.n--
	}
	p.vals = append(p.vals, row...)
	p.n++
}

// Query answers as PVE's rrddata methods do for the series key: the
// points of timeframe tf consolidated with cf up to now.
func (s *Store) Query(key string, tf Timeframe, cf CF) (*Result, error) {
	e, err := s.locked(key, false)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, &NotFoundError{Path: s.Path(key)}
	}
	defer e.mu.Unlock()
	return e.st.query(tf, cf, s.now().Unix(), e.reader())
}

// reader returns the rows of an archive: the file's with the pending
// ones over them. e.mu must be held while it is used.
func (e *entry) reader() archiveReader {
	return func(r int, first, n int64, dst []float64) error {
		sc := e.schema
		a := sc.rra[r]
		rs, nds := sc.step*a.Steps, int64(len(sc.ds))
		if e.onDisk {
			// the ring may wrap: at most two runs of the file
			idx := (first / rs) % a.Rows
			run := min(n, a.Rows-idx)
			if err := readRows(e.path, sc.layout.data[r]+idx*nds*8, dst[:run*nds]); err != nil {
				return err
			}
			if run < n {
				if err := readRows(e.path, sc.layout.data[r], dst[run*nds:n*nds]); err != nil {
					return err
				}
			}
		} else {
			for i := range dst[:n*nds] {
				dst[i] = math.NaN()
			}
		}
		p := &e.pending[r]
		for i := range p.n {
			t := p.first + i*rs
			if t >= first && t < first+n*rs {
				j := (t - first) / rs
				copy(dst[j*nds:(j+1)*nds], p.vals[i*nds:])
			}
		}
		return nil
	}
}

func readRows(path string, off int64, dst []float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, len(dst)*8)
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	decodeRows(dst, b)
	return nil
}

// Flush writes every series changed since the last flush: each file is
// written beside the old one, all are synced, then each replaces its old
// file. A series that fails stays changed for the next flush.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	dirty := make([]*entry, 0, len(s.series)) // prepare skips the unchanged
	for _, e := range s.series {
		dirty = append(dirty, e)
	}
	s.mu.Unlock()

	// write the new files, in parallel
	jobs := make([]flushJob, len(dirty))
	var wg sync.WaitGroup
	next := make(chan int)
	workers := min(runtime.GOMAXPROCS(0), 4, max(1, len(dirty)))
	dirs := newDirSet()
	for range workers {
		wg.Go(func() {
			var buf []byte
			for i := range next {
				jobs[i], buf = s.prepare(dirty[i], dirs, buf)
			}
		})
	}
	for i := range dirty {
		next <- i
	}
	close(next)
	wg.Wait()

	var errs []error
	var written []*flushJob
	for i := range jobs {
		switch j := &jobs[i]; {
		case j.err != nil:
			errs = append(errs, j.err)
		case j.tmp != "":
			written = append(written, j)
		}
	}
	if len(written) == 0 {
		return errors.Join(errs...)
	}
	if err := syncFS(s.dir, written); err != nil {
		for _, j := range written {
			os.Remove(j.tmp)
		}
		return errors.Join(append(errs, err)...)
	}
	for _, j := range written {
		if err := s.commit(j); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range dirs.list() {
		if err := syncDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Error("rrd flush", "err", err)
		return err
	}
	return nil
}

// flushJob is one series' file written by a flush, not yet in place.
type flushJob struct {
	e    *entry
	tmp  string  // the new file, "" when nothing was to be written
	gen  uint64  // entry generation written
	last []int64 // per archive: end time of the last pending row written (0: none)
	err  error
}

// prepare writes the new file of e beside the old one if e changed.
func (s *Store) prepare(e *entry, dirs *dirSet, buf []byte) (flushJob, []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st == nil || e.removed || e.gen == e.flushed && e.onDisk {
		return flushJob{}, buf
	}
	sc := e.schema
	size := int(sc.layout.size)
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	b := buf[:size]
	if !e.onDisk {
		fillUnknown(b, sc)
	} else if err := readAll(e.path, b); err != nil {
		s.log.Error("rrd file unreadable, its rows are lost", "path", e.path, "err", err)
		fillUnknown(b, sc)
	}
	putState(b, e.st)
	j := flushJob{e: e, gen: e.gen, last: make([]int64, len(sc.rra))}
	nds := int64(len(sc.ds))
	for r := range e.pending {
		p := &e.pending[r]
		rs := sc.step * sc.rra[r].Steps
		for i := range p.n {
			putRow(b, sc, r, p.first+i*rs, p.vals[i*nds:(i+1)*nds])
		}
		if p.n > 0 {
			j.last[r] = p.first + (p.n-1)*rs
		}
	}
	seal(b)
	dir := filepath.Dir(e.path)
	if err := dirs.make(dir); err != nil {
		j.err = err
		return j, buf
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(e.path)+".tmp-*")
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o640)
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	if err != nil {
		j.err = fmt.Errorf("write %s: %w", e.path, err)
		return j, buf
	}
	j.tmp = f.Name()
	return j, buf
}

// readAll reads the whole file path into b, which must have its size.
func readAll(path string, b []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.ReadFull(f, b); err != nil {
		return err
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return errors.New("file larger than its schema")
	}
	return nil
}

// commit puts the file of j in place and forgets the rows it holds.
func (s *Store) commit(j *flushJob) error {
	e := j.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		os.Remove(j.tmp)
		return nil
	}
	if err := s.rename(j.tmp, e.path); err != nil {
		os.Remove(j.tmp)
		return fmt.Errorf("replace %s: %w", e.path, err)
	}
	e.onDisk, e.flushed, e.mtime = true, j.gen, s.now()
	nds := int64(len(e.schema.ds))
	for r := range e.pending {
		p := &e.pending[r]
		if p.n == 0 || j.last[r] < p.first {
			continue
		}
		rs := e.schema.step * e.schema.rra[r].Steps
		k := min((j.last[r]-p.first)/rs+1, p.n)
		p.first += k * rs
		p.n -= k
		if p.n == 0 {
			p.vals = nil
		} else {
			p.vals = p.vals[k*nds:]
		}
	}
	return nil
}

// syncFS makes the new files durable before they replace the old ones:
// one syncfs for the file system, or an fsync of each if that fails.
func syncFS(dir string, jobs []*flushJob) error {
	if d, err := os.Open(dir); err == nil {
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err == nil {
			return nil
		}
	}
	for _, j := range jobs {
		f, err := os.Open(j.tmp)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", j.tmp, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// dirSet creates the directories of a flush once each and remembers
// them to sync after the renames.
type dirSet struct {
	mu   sync.Mutex // guards made
	made map[string]bool
}

func newDirSet() *dirSet { return &dirSet{made: map[string]bool{}} }

func (d *dirSet) make(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.made[dir] {
		return nil
	}
	// PVE: 0750 (status.c, checked_mkdir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	d.made[dir] = true
	return nil
}

func (d *dirSet) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := make([]string, 0, len(d.made))
	for dir := range d.made {
		l = append(l, dir)
	}
	sort.Strings(l)
	return l
}

// Expire removes the series that got no update for longer than
// Options.Retain and returns how many.
func (s *Store) Expire() int {
	if s.opts.Retain < 0 {
		return 0
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for key, e := range s.series {
		e.mu.Lock()
		last := e.mtime
		if e.st != nil {
			last = time.Unix(e.st.lastUp, 0)
		}
		retain := s.opts.Retain
		if retain == 0 {
			retain = time.Duration(e.schema.retainSeconds()) * time.Second
		}
		if now.Sub(last) > retain {
			if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("remove expired rrd file", "path", e.path, "err", err)
			}
			e.removed = true
			delete(s.series, key)
			n++
		}
		e.mu.Unlock()
	}
	return n
}

// retainSeconds is the span of the longest timeframe PVE queries for s,
// plus a day.
func (sc *Schema) retainSeconds() int64 {
	if sc == NodeSchema {
		return Decade.Span() + 86400
	}
	return Year.Span() + 86400
}

// flusher flushes every interval and expires old series, until Close.
func (s *Store) flusher(interval time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			_ = s.Flush() // logged
			s.Expire()
		}
	}
}

// Close stops the periodic flush, makes the store refuse further calls
// and writes every changed series.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	if s.opts.FlushInterval > 0 {
		close(s.stop)
	}
	<-s.done
	return s.Flush()
}
