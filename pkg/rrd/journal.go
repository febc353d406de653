package rrd

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A flush changes the files of existing series in place: their meta
// region and the rows added since the last flush, a few KiB of each
// 0.1-1.3 MB file. Those writes go through one journal per store, so that
// a crash at any point leaves every file as before the flush or as after
// it:
//
//  1. the changes of every file are written to the journal, which is
//     synced (fsync);
//  2. each file gets its changes (pwrite) and is synced (fdatasync);
//  3. the journal is emptied and synced.
//
// Nothing is written in place before the journal that holds it is
// durable, and the journal is emptied only once every file it holds is.
// So after a crash the journal is either incomplete (its size or checksum
// is wrong: the crash came during step 1, no file was touched, and it is
// dropped), or complete, and then Open applies it again, which is
// idempotent: the files, torn or not, get exactly the bytes of step 2.
// Rows are a ring, and a flush overwrites the oldest rows with the newest;
// since the overwritten rows and the state that tells which rows are
// where are in the same journal record, there is no moment at which a
// file's valid state covers rows the flush already replaced.
//
// Writing in place with a journal costs each file 2 copies of its changes
// (journal and file) and 1 fdatasync, plus 2 fsyncs of the journal per
// flush. A flush that cannot apply its journal (an I/O error in step 2)
// keeps it; the next flush applies it before it writes a new one.
//
// The journal:
//
//	header, 24 bytes
//	   0  [6]byte  magic "PVNJNL"
//	   6  uint16   version (1)
//	   8  uint32   number of records
//	  12  [4]byte  reserved
//	  16  uint64   size of the records in bytes (L)
//	records, L bytes; each:
//	   0  uint32   size of the rest of the record
//	   4  uint16   length of the key (K)
//	   6  [K]byte  key of the series ("pve-vm-9.0/100"), its file's path
//	               under the store directory
//	      uint64   size of the file
//	      uint16   number of extents
//	      extents: uint64 offset, uint32 length, the bytes to write there
//	trailer
//	   0  uint32   CRC-32C (Castagnoli) of every byte before it
const (
	journalName    = ".journal"
	journalMagic   = "PVNJNL"
	journalVersion = 1
	journalHeader  = 24

	// journalMax bounds the records of one journal; a flush with more
	// writes several journals in turn.
	journalMax = 64 << 20
)

// fileOps are the calls by which a Store changes files. osOps is the only
// implementation outside tests; the crash tests substitute one that stops
// after any call and then drops or tears what was not synced yet: a power
// loss and a torn write cannot be caused otherwise.
type fileOps interface {
	writeAt(f *os.File, b []byte, off int64) error
	truncate(f *os.File, size int64) error
	// sync makes the data and the metadata of f durable (fsync).
	sync(f *os.File) error
	// datasync makes the data of f durable (fdatasync).
	datasync(f *os.File) error
	rename(oldpath, newpath string) error
}

type osOps struct{}

var _ fileOps = osOps{}

func (osOps) writeAt(f *os.File, b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	return err
}

func (osOps) truncate(f *os.File, size int64) error { return f.Truncate(size) }

func (osOps) sync(f *os.File) error { return f.Sync() }

func (osOps) datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) {
		for {
			if err = unix.Fdatasync(int(fd)); err != syscall.EINTR {
				return
			}
		}
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

func (osOps) rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// extent is bytes to write at an offset of a file.
type extent struct {
	off  int64
	data []byte
}

// journalRecord is the changes of one file.
type journalRecord struct {
	key  string
	size int64 // of the file
	ext  []extent
}

// recordBuilder encodes a journal record.
type recordBuilder struct {
	b    []byte
	next int // offset of the extent count
	n    int
}

func newRecord(key string, size int64, capacity int) *recordBuilder {
	rb := &recordBuilder{b: make([]byte, 0, 4+2+len(key)+8+2+capacity)}
	rb.b = le.AppendUint32(rb.b, 0)
	rb.b = le.AppendUint16(rb.b, uint16(len(key)))
	rb.b = append(rb.b, key...)
	rb.b = le.AppendUint64(rb.b, uint64(size))
	rb.next = len(rb.b)
	rb.b = le.AppendUint16(rb.b, 0)
	return rb
}

// extent adds an extent of n bytes at off and returns them to be filled.
func (rb *recordBuilder) extent(off int64, n int) []byte {
	rb.b = le.AppendUint64(rb.b, uint64(off))
	rb.b = le.AppendUint32(rb.b, uint32(n))
	rb.b = append(rb.b, make([]byte, n)...)
	rb.n++
	return rb.b[len(rb.b)-n:]
}

func (rb *recordBuilder) bytes() []byte {
	le.PutUint32(rb.b, uint32(len(rb.b)-4))
	le.PutUint16(rb.b[rb.next:], uint16(rb.n))
	return rb.b
}

// errJournal is wrapped by every decoding error of a journal.
var errJournal = errors.New("not a valid journal")

// decodeRecord decodes one record, b without its size field. The
// extents alias b.
func decodeRecord(b []byte) (journalRecord, error) {
	var r journalRecord
	bad := func(what string) (journalRecord, error) {
		return journalRecord{}, fmt.Errorf("record of %q: %s: %w", clip(r.key), what, errJournal)
	}
	if len(b) < 2 {
		return bad("truncated")
	}
	k := int(le.Uint16(b))
	if len(b) < 2+k+8+2 {
		return bad("truncated")
	}
	r.key = string(b[2 : 2+k])
	b = b[2+k:]
	r.size = int64(le.Uint64(b))
	n := int(le.Uint16(b[8:]))
	b = b[10:]
	r.ext = make([]extent, 0, n)
	for range n {
		if len(b) < 12 {
			return bad("truncated extent")
		}
		off, size := int64(le.Uint64(b)), int64(le.Uint32(b[8:]))
		if off < 0 || off > r.size || size > r.size-off || int64(len(b)-12) < size {
			return bad("extent out of the file")
		}
		r.ext = append(r.ext, extent{off: off, data: b[12 : 12+size]})
		b = b[12+size:]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return r, nil
}

// encodeJournal returns the journal of the records recs (each from
// recordBuilder.bytes).
func encodeJournal(recs [][]byte) []byte {
	n := journalHeader + 4
	for _, r := range recs {
		n += len(r)
	}
	b := make([]byte, journalHeader, n)
	copy(b, journalMagic)
	le.PutUint16(b[6:], journalVersion)
	le.PutUint32(b[8:], uint32(len(recs)))
	le.PutUint64(b[16:], uint64(n-journalHeader-4))
	for _, r := range recs {
		b = append(b, r...)
	}
	return le.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeJournal decodes a whole journal; an empty one has no records.
func decodeJournal(b []byte) ([]journalRecord, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < journalHeader+4 || string(b[:6]) != journalMagic || le.Uint16(b[6:]) != journalVersion {
		return nil, fmt.Errorf("bad header: %w", errJournal)
	}
	if le.Uint64(b[16:]) != uint64(len(b)-journalHeader-4) {
		return nil, fmt.Errorf("size %d, header says %d: %w", len(b), le.Uint64(b[16:])+journalHeader+4, errJournal)
	}
	n := len(b) - 4
	if got, want := crc32.Checksum(b[:n], crcTable), le.Uint32(b[n:]); got != want {
		return nil, fmt.Errorf("checksum %08x, want %08x: %w", got, want, errJournal)
	}
	count := int(le.Uint32(b[8:]))
	recs := make([]journalRecord, 0, min(count, n/16))
	for p := b[journalHeader:n]; len(p) > 0; {
		if len(p) < 4 || int64(len(p)-4) < int64(le.Uint32(p)) {
			return nil, fmt.Errorf("truncated record: %w", errJournal)
		}
		size := int(le.Uint32(p))
		r, err := decodeRecord(p[4 : 4+size])
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
		p = p[4+size:]
	}
	if len(recs) != count {
		return nil, fmt.Errorf("%d records, header says %d: %w", len(recs), count, errJournal)
	}
	return recs, nil
}

func (s *Store) journalPath() string { return filepath.Join(s.dir, journalName) }

// createJournal makes sure the journal file exists and that its
// directory entry is durable: a journal that a crash could unlink would
// leave the files it was applied to torn.
func (s *Store) createJournal() error {
	f, err := os.OpenFile(s.journalPath(), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.syncDir(s.dir)
}

// writeJournal replaces the journal by one of recs and syncs it.
// s.flushMu must be held.
func (s *Store) writeJournal(recs [][]byte) error {
	f, err := os.OpenFile(s.journalPath(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	defer f.Close()
	s.journalDirty = true
	if err := s.ops.truncate(f, 0); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := s.ops.writeAt(f, encodeJournal(recs), 0); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := s.ops.sync(f); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

// clearJournal empties the journal and syncs it: from then on a crash
// cannot apply its records again. s.flushMu must be held.
func (s *Store) clearJournal() error {
	f, err := os.OpenFile(s.journalPath(), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	defer f.Close()
	if err := s.ops.truncate(f, 0); err != nil {
		return fmt.Errorf("clear journal: %w", err)
	}
	if err := s.ops.sync(f); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	s.journalDirty = false
	return nil
}

// replayJournal applies what the journal holds, as Open does after a
// crash and a flush after one that could not apply its journal, then
// empties it. An incomplete journal is dropped: it was never applied.
// s.flushMu must be held (or the store not yet shared).
func (s *Store) replayJournal() error {
	b, err := os.ReadFile(s.journalPath())
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	recs, err := decodeJournal(b)
	if err != nil {
		s.log.Info("incomplete rrd journal dropped", "path", s.journalPath(), "err", err)
		return s.clearJournal()
	}
	if len(recs) > 0 {
		s.log.Info("rrd journal applied", "path", s.journalPath(), "files", len(recs))
	}
	var errs []error
	for _, r := range recs {
		if err := s.apply(r, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.clearJournal()
}

// apply writes the extents of r into its file and syncs it. With replay
// set, a file that is gone or of another size is skipped: it was removed
// (expired) or replaced after the journal was written.
func (s *Store) apply(r journalRecord, replay bool) error {
	sc, err := splitKey(r.key)
	if err != nil {
		return fmt.Errorf("apply journal: %w", err)
	}
	path := s.Path(r.key)
	if r.size != sc.layout.size {
		return fmt.Errorf("apply journal to %s: size %d, want %d: %w", path, r.size, sc.layout.size, errJournal)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if replay && errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("rrd journal names a missing file", "path", path)
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply journal: %w", err)
	}
	defer f.Close()
	if replay {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("apply journal: %w", err)
		}
		if fi.Size() != r.size {
			s.log.Warn("rrd journal names a file of another size", "path", path, "size", fi.Size())
			return nil
		}
	}
	for _, x := range r.ext {
		if err := s.ops.writeAt(f, x.data, x.off); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := s.ops.datasync(f); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// syncDir makes the entries of dir durable.
func (s *Store) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := s.ops.sync(d); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
