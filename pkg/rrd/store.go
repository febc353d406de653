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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
// files. A flush writes a new series' file whole (temporary file, sync,
// rename) and changes an existing one in place through the store's
// journal (journal.go): a crash leaves every file as of the flush before
// or the one it interrupted. A Store is safe for concurrent use.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex // guards series and closed
	series map[string]*entry
	closed bool

	flushMu sync.Mutex // serializes flushes and expiry; guards journalDirty
	// journalDirty is set while the journal may hold records not known
	// to be in their files; the next flush applies them first.
	journalDirty bool

	stop chan struct{} // closed by Close to end the flusher
	done chan struct{} // closed when the flusher ended

	// ops changes files: osOps but in the crash tests, which also set
	// workers to 1 so that the steps of a flush come in one order.
	ops     fileOps
	workers int // series a flush writes at once
}

// entry is one series of a Store.
type entry struct {
	mu      sync.Mutex // guards the fields below
	key     string
	path    string
	schema  *Schema
	st      *state        // nil until loaded from the file or created
	onDisk  bool          // the file exists
	version int           // format version of the file; an older one is rewritten whole on the next flush
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

// Open opens or creates the store in opts.Dir, applies the journal of a
// flush a crash interrupted, finds the series it holds (loading each
// lazily, on first use), removes temporary files a crash left, and starts
// the periodic flush. It fails if the journal cannot be applied, rather
// than serve files that may be torn.
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
		series: map[string]*entry{}, stop: make(chan struct{}), done: make(chan struct{}),
		ops: osOps{}, workers: flushWorkers}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("rrd store: %w", err)
	}
	if err := s.createJournal(); err != nil {
		return nil, fmt.Errorf("rrd store: %w", err)
	}
	if err := s.replayJournal(); err != nil {
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
	st, v, err := loadFile(e.path, e.schema)
	if err == nil {
		e.st, e.version = st, v
		return
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

// loadFile reads the state of the file path of schema sc and its format
// version: of a current file only the meta region, of a version 1 file
// all of it (its checksum covers the whole).
func loadFile(path string, sc *Schema) (*state, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	b := make([]byte, sc.layout.meta)
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("size %d: %w", fi.Size(), ErrCorrupt)
		}
		return nil, 0, err
	}
	v, err := fileVersion(b)
	if err != nil {
		return nil, 0, err
	}
	if want := sc.layout.fileSize(v); fi.Size() != want {
		return nil, 0, fmt.Errorf("size %d, want %d: %w", fi.Size(), want, ErrCorrupt)
	}
	var fsc *Schema
	if v == version1 {
		b = make([]byte, fi.Size())
		if _, err := f.ReadAt(b, 0); err != nil {
			return nil, 0, err
		}
		fsc, _, err = readFile(b)
	} else {
		fsc, err = readMeta(b)
	}
	if err != nil {
		return nil, 0, err
	}
	if !fsc.equal(sc) {
		return nil, 0, fmt.Errorf("schema differs: %w", ErrCorrupt)
	}
	return readState(b, sc), v, nil
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
			base := sc.layout.rowOffset(r, e.version)
			if err := readRows(e.path, base+idx*nds*8, dst[:run*nds]); err != nil {
				return err
			}
			if run < n {
				if err := readRows(e.path, base, dst[run*nds:n*nds]); err != nil {
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

// Flush writes every series changed since the last flush. An existing
// file gets its meta region and the rows added since in place, through
// the journal (journal.go); a new series, a file of an older format
// version, or one with so many rows to write that writing it whole costs
// about as much, is written whole beside its file, synced and renamed
// over it. Each changed file is synced once. A series that fails stays
// changed for the next flush.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.flushLocked(); err != nil {
		s.log.Error("rrd flush", "err", err)
		return err
	}
	return nil
}

// flushWorkers is how many series a flush writes at once: the work is
// waiting for the disk, and the file system commits concurrent syncs
// together.
const flushWorkers = 16

// flushLocked is Flush. s.flushMu must be held.
func (s *Store) flushLocked() error {
	if s.journalDirty {
		// the last flush could not apply or empty its journal
		if err := s.replayJournal(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	all := make([]*entry, 0, len(s.series)) // prepare skips the unchanged
	for _, e := range s.series {
		all = append(all, e)
	}
	s.mu.Unlock()

	jobs := make([]flushJob, len(all))
	dirs := newDirSet(s.dir)
	bufs := make([][]byte, s.workers)
	each(len(all), s.workers, func(w, i int) {
		jobs[i] = s.prepare(all[i], dirs, &bufs[w])
	})
	bufs = nil // up to a file's size each, not needed any more

	var errs []error
	var inPlace []*flushJob
	whole := false
	for i := range jobs {
		switch j := &jobs[i]; {
		case j.err != nil:
			errs = append(errs, j.err)
		case j.tmp != "":
			if err := s.replace(j); err != nil {
				errs = append(errs, err)
			}
			whole = true
		case j.rec != nil:
			inPlace = append(inPlace, j)
		}
	}
	if whole {
		for _, d := range dirs.list() {
			if err := s.syncDir(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for len(inPlace) > 0 {
		n, size := 1, len(inPlace[0].rec)
		for n < len(inPlace) && size+len(inPlace[n].rec) <= journalMax {
			size += len(inPlace[n].rec)
			n++
		}
		if err := s.flushInPlace(inPlace[:n]); err != nil {
			// the journal could not be written or applied; what it holds
			// stays changed, and so does what follows
			errs = append(errs, err)
			break
		}
		inPlace = inPlace[n:]
	}
	return errors.Join(errs...)
}

// flushInPlace writes jobs through the journal. s.flushMu must be held.
func (s *Store) flushInPlace(jobs []*flushJob) error {
	recs := make([][]byte, len(jobs))
	for i, j := range jobs {
		recs[i] = j.rec
	}
	if err := s.writeJournal(recs); err != nil {
		return err
	}
	errs := make([]error, len(jobs))
	each(len(jobs), s.workers, func(_, i int) {
		r, err := decodeRecord(jobs[i].rec[4:])
		if err == nil {
			err = s.apply(r, false)
		}
		errs[i] = err
	})
	for i, j := range jobs {
		if errs[i] == nil {
			j.e.commit(j, s.now())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err // the journal stays, for the next flush or Open to apply
	}
	return s.clearJournal()
}

// each calls f(w, i) for every i in [0, n) on up to workers goroutines;
// w is the goroutine's number.
func each(n, workers int, f func(w, i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range max(1, min(workers, n)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(w, i)
			}
		})
	}
	wg.Wait()
}

// flushJob is what a flush writes of one series: a new file (tmp) or a
// journal record (rec).
type flushJob struct {
	e    *entry
	tmp  string  // the new file, synced, "" when not written whole
	rec  []byte  // the journal record of the changes in place
	gen  uint64  // entry generation written
	last []int64 // per archive: end time of the last pending row written (0: none)
	err  error
}

// prepare builds the journal record of e, or writes its new file beside
// the old one and syncs it, if e changed. buf is the worker's buffer for
// whole files.
func (s *Store) prepare(e *entry, dirs *dirSet, buf *[]byte) flushJob {
	e.mu.Lock()
	if e.st == nil || e.removed || e.gen == e.flushed && e.onDisk {
		e.mu.Unlock()
		return flushJob{}
	}
	sc := e.schema
	j := flushJob{e: e, gen: e.gen, last: e.lastPending()}
	if e.onDisk && e.version == formatVersion {
		// in place, unless the changes are a good part of the file (the
		// rows of hours without a flush)
		if j.rec = e.record(); int64(len(j.rec)) <= sc.layout.size/4 {
			e.mu.Unlock()
			return j
		}
		j.rec = nil
	}
	size := sc.layout.size
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if !e.onDisk {
		fillUnknown(b, sc)
	} else if err := readFileRows(e.path, sc, e.version, b); err != nil {
		s.log.Error("rrd file unreadable, its rows are lost", "path", e.path, "err", err)
		fillUnknown(b, sc)
	}
	putMeta(b, e.st)
	nds := int64(len(sc.ds))
	for r := range e.pending {
		p := &e.pending[r]
		rs := sc.step * sc.rra[r].Steps
		for i := range p.n {
			putRow(b, sc, r, p.first+i*rs, p.vals[i*nds:(i+1)*nds])
		}
	}
	e.mu.Unlock()

	dir := filepath.Dir(e.path)
	if err := dirs.make(dir); err != nil {
		j.err = err
		return j
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(e.path)+".tmp-*")
	if err == nil {
		err = s.ops.writeAt(f, b, 0)
		if err == nil {
			err = s.ops.sync(f)
		}
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
		return j
	}
	j.tmp = f.Name()
	return j
}

// lastPending returns, per archive, the end time of the last pending row
// (0: none). e.mu must be held.
func (e *entry) lastPending() []int64 {
	last := make([]int64, len(e.pending))
	for r, p := range e.pending {
		if p.n > 0 {
			last[r] = p.first + (p.n-1)*e.schema.step*e.schema.rra[r].Steps
		}
	}
	return last
}

// record encodes the journal record of e's changes: its meta region and
// its pending rows, one extent per run of rows (two where the ring
// wraps). e.mu must be held.
func (e *entry) record() []byte {
	sc := e.schema
	l := &sc.layout
	nds := int64(len(sc.ds))
	n := 12 + l.meta
	for _, p := range e.pending {
		n += 24 + p.n*nds*8
	}
	rb := newRecord(e.key, l.size, int(n))
	putMeta(rb.extent(0, int(l.meta)), e.st)
	for r := range e.pending {
		p := &e.pending[r]
		if p.n == 0 {
			continue
		}
		a := sc.rra[r]
		idx := (p.first / (sc.step * a.Steps)) % a.Rows
		run := min(p.n, a.Rows-idx)
		putRows(rb.extent(l.data[r]+idx*nds*8, int(run*nds*8)), p.vals[:run*nds])
		if run < p.n {
			putRows(rb.extent(l.data[r], int((p.n-run)*nds*8)), p.vals[run*nds:p.n*nds])
		}
	}
	return rb.bytes()
}

func putRows(b []byte, vals []float64) {
	for i, v := range vals {
		putF(b[i*8:], v)
	}
}

// readFileRows reads the rows of the file path, of schema sc and format
// version v, into b, a whole file of the current version.
func readFileRows(path string, sc *Schema, v int, b []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	l := &sc.layout
	if want := l.fileSize(v); fi.Size() != want {
		return fmt.Errorf("size %d, want %d", fi.Size(), want)
	}
	_, err = f.ReadAt(b[l.meta:l.size], l.rowOffset(0, v))
	return err
}

// replace puts the new file of j in place and forgets the rows it holds.
func (s *Store) replace(j *flushJob) error {
	e := j.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		os.Remove(j.tmp)
		return nil
	}
	if err := s.ops.rename(j.tmp, e.path); err != nil {
		os.Remove(j.tmp)
		return fmt.Errorf("replace %s: %w", e.path, err)
	}
	e.commitLocked(j, s.now())
	return nil
}

// commit records that the file holds what j wrote.
func (e *entry) commit(j *flushJob, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.commitLocked(j, now)
}

// commitLocked records that the file holds what j wrote and forgets the
// pending rows it holds. e.mu must be held.
func (e *entry) commitLocked(j *flushJob, now time.Time) {
	e.onDisk, e.version, e.flushed, e.mtime = true, formatVersion, j.gen, now
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
}

// dirSet creates the directories of a flush once each and remembers
// them, with the parents of those it created up to the store's, to sync
// after the renames.
type dirSet struct {
	root string
	mu   sync.Mutex // guards made
	made map[string]bool
}

func newDirSet(root string) *dirSet { return &dirSet{root: root, made: map[string]bool{}} }

func (d *dirSet) make(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.made[dir] {
		return nil
	}
	d.made[dir] = true
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	// PVE: 0750 (status.c, checked_mkdir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		delete(d.made, dir)
		return err
	}
	// a new directory is durable once its parent is synced
	for p := filepath.Dir(dir); !d.made[p]; p = filepath.Dir(p) {
		d.made[p] = true
		if p == d.root || p == filepath.Dir(p) {
			break
		}
	}
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
	s.flushMu.Lock() // a flush writes the files it found
	defer s.flushMu.Unlock()
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
