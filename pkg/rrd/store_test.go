package rrd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for a Store.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(unix int64) { c.mu.Lock(); c.t = time.Unix(unix, 0); c.mu.Unlock() }

func openStore(t testing.TB, dir string, c *clock, opts Options) *Store {
	t.Helper()
	opts.Dir, opts.Now = dir, c.now
	if opts.FlushInterval == 0 {
		opts.FlushInterval = -1
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// vmRecord is a pve-vm-9.0 broadcast at tm: a running guest whose
// counters grow 1000 bytes/s.
func vmRecord(tm int64) string {
	n := (tm - t0) * 1000
	return fmt.Sprintf("3600:web:running:0:%d:2:0.25:1024:512:4096:2048:%d:%d:%d:%d:600:0.1:0.2:0.3:0.4:0.5:0.6", tm, n, 2*n, 3*n, 4*n)
}

func answers(t testing.TB, s *Store, key string) string {
	t.Helper()
	var out bytes.Buffer
	for _, tf := range []Timeframe{Hour, Day, Week, Month, Year} {
		for _, cf := range []CF{Average, Max} {
			res, err := s.Query(key, tf, cf)
			if err != nil {
				t.Fatalf("Query(%s, %s, %s): %v", key, tf, cf, err)
			}
			out.Write(res.AppendJSON(nil))
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// TestStoreRestart writes history, closes the store, opens it again and
// expects the same answers, and updates that go on where they stopped.
func TestStoreRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{}
	s := openStore(t, dir, c, Options{})
	var tm int64
	for tm = t0; tm < t0+3*3600; tm += 10 {
		if err := s.UpdateRecord("pve-vm-9.0/100", vmRecord(tm)); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateRecord("pve2-storage/pve1/local", fmt.Sprintf("%d:1000:%d", tm, tm-t0)); err != nil {
			t.Fatal(err)
		}
		if tm == t0+3600 {
			if err := s.Flush(); err != nil { // rows both in the file and pending
				t.Fatal(err)
			}
		}
	}
	c.set(tm + 5)
	before := answers(t, s, "pve-vm-9.0/100") + answers(t, s, "pve-storage-9.0/pve1/local")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("pve-vm-9.0/100", tm, make([]float64, 17)); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v; want ErrClosed", err)
	}
	s2 := openStore(t, dir, c, Options{})
	defer s2.Close()
	if got := s2.Keys(); fmt.Sprint(got) != "[pve-storage-9.0/pve1/local pve-vm-9.0/100]" {
		t.Errorf("Keys after reopen = %v", got)
	}
	after := answers(t, s2, "pve-vm-9.0/100") + answers(t, s2, "pve-storage-9.0/pve1/local")
	if after != before {
		t.Errorf("answers differ after restart")
	}
	// the counters' rate goes on from the stored last value
	for ; tm < t0+3*3600+120; tm += 10 {
		if err := s2.UpdateRecord("pve-vm-9.0/100", vmRecord(tm)); err != nil {
			t.Fatal(err)
		}
	}
	c.set(tm)
	res, err := s2.Query("pve-vm-9.0/100", Hour, Average)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Point(res.Len() - 1); p["netin"] != 1000 || p["diskwrite"] != 4000 {
		t.Errorf("after restart, last point %v; want netin 1000, diskwrite 4000", p)
	}
}

func TestStoreFileLayout(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, &clock{}, Options{})
	for key, data := range map[string]string{
		"pve-node-9.0/pve1":          "3600::1700000000:0.5:8:0.1:0.01:100:50:10:5:1000:500:1000:2000:40:0:0.1:0.2:0.3:0.4:0.5",
		"pve2.3-vm/101":              "0:web:stopped:0:1700000000:2:U:1024:U:4096:0:U:U:U:U",
		"pve-storage-9.0/pve1/local": "1700000000:1000:400",
	} {
		if err := s.UpdateRecord(key, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for f, sc := range map[string]*Schema{"pve-node-9.0/pve1": NodeSchema, "pve-vm-9.0/101": VMSchema, "pve-storage-9.0/pve1/local": StorageSchema} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if fi.Size() != sc.FileSize() {
			t.Errorf("%s: %d bytes; want %d", f, fi.Size(), sc.FileSize())
		}
	}
}

// TestStoreQueryBeforeFlush: answers include the rows not yet written.
func TestStoreQueryBeforeFlush(t *testing.T) {
	c := &clock{}
	s := openStore(t, t.TempDir(), c, Options{})
	defer s.Close()
	if _, err := s.Query("pve-vm-9.0/100", Hour, Average); err == nil || err.Error() != "opening '"+s.Path("pve-vm-9.0/100")+"': No such file or directory" {
		t.Errorf("Query of a missing series = %v", err)
	}
	tm := int64(t0)
	for ; tm < t0+600; tm += 10 {
		if err := s.UpdateRecord("pve-vm-9.0/100", vmRecord(tm)); err != nil {
			t.Fatal(err)
		}
	}
	c.set(tm)
	pending := answers(t, s, "pve-vm-9.0/100")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if flushed := answers(t, s, "pve-vm-9.0/100"); flushed != pending {
		t.Error("answers differ after the flush")
	}
	res, _ := s.Query("pve-vm-9.0/100", Hour, Max)
	if n := res.Len(); n != 59 || res.Point(n - 1)["cpu"] != 0.25 { // the step ending now has no update yet
		t.Errorf("hour: %d points, last %v", n, res.Point(n-1))
	}
}

// TestStoreCrashSafety: a flush interrupted before its journal is
// written, a torn temporary file left by a crash and a damaged file never
// cost more than the updates since the last complete flush
// (TestStoreCrashAtEveryStep interrupts a flush at every other step).
func TestStoreCrashSafety(t *testing.T) {
	dir := t.TempDir()
	c := &clock{}
	s := openStore(t, dir, c, Options{})
	key := "pve-vm-9.0/100"
	path := s.Path(key)
	tm := int64(t0)
	for ; tm < t0+1200; tm += 10 {
		if err := s.UpdateRecord(key, vmRecord(tm)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	c.set(tm)
	goodAnswers := answers(t, s, key)

	// a crash while the journal is written
	for ; tm < t0+1800; tm += 10 {
		if err := s.UpdateRecord(key, vmRecord(tm)); err != nil {
			t.Fatal(err)
		}
	}
	ops := &crashOps{failAt: 2} // the journal's truncation, then its write
	s.ops = ops
	if err := s.Flush(); !errors.Is(err, errCrash) {
		t.Fatalf("Flush = %v; want the crash", err)
	}
	ops.lose(t, loseAll)
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Error("the file changed although its journal was not written")
	}
	// a torn temporary file, as a crash during its write leaves it
	torn := filepath.Join(filepath.Dir(path), ".100.tmp-123")
	if err := os.WriteFile(torn, good[:len(good)/3], 0o640); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.closed = true // drop the store as a crash would: no final flush
	s.mu.Unlock()

	s2 := openStore(t, dir, c, Options{})
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Errorf("torn temporary file still there: %v", err)
	}
	c.set(t0 + 1200)
	if got := answers(t, s2, key); got != goodAnswers {
		t.Error("answers after the crash differ from those of the last flush")
	}
	s2.Close()

	// a damaged file is set aside, and the series starts anew
	b := bytes.Clone(good)
	b[VMSchema.layout.meta/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t, dir, c, Options{})
	defer s3.Close()
	var nf *NotFoundError
	if _, err := s3.Query(key, Hour, Average); !errors.As(err, &nf) {
		t.Errorf("Query of a damaged series = %v; want not found", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), ".100.bad")); err != nil {
		t.Errorf("damaged file not set aside: %v", err)
	}
	if err := s3.UpdateRecord(key, vmRecord(tm+10)); err != nil {
		t.Errorf("update after a damaged file: %v", err)
	}
}

// TestStoreBoundedSize: a million updates (four months at 10 s) with a
// flush every 100,000 leave one file of the schema's fixed size.
func TestStoreBoundedSize(t *testing.T) {
	if testing.Short() {
		t.Skip("a million updates")
	}
	dir := t.TempDir()
	s := openStore(t, dir, &clock{}, Options{})
	key := "pve-storage-9.0/pve1/local"
	vals := []float64{1e12, 0}
	for i := range int64(1_000_000) {
		vals[1] = float64(i % 1000)
		if err := s.Update(key, t0+10*i, vals); err != nil {
			t.Fatal(err)
		}
		if i%100_000 == 99_999 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(s.Path(key))
			if err != nil || fi.Size() != StorageSchema.FileSize() {
				t.Fatalf("after %d updates: %v, size %d; want %d", i+1, err, fi.Size(), StorageSchema.FileSize())
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(s.Path(key)))
	if len(ents) != 1 {
		t.Errorf("%d files in the storage directory; want 1", len(ents))
	}
	s.mu.Lock()
	e := s.series[key]
	s.mu.Unlock()
	e.mu.Lock()
	for r, p := range e.pending {
		if p.n != 0 || len(p.vals) != 0 {
			t.Errorf("archive %d: %d rows still pending after the last flush", r, p.n)
		}
	}
	e.mu.Unlock()
	s.Close()
}

func TestStoreLimits(t *testing.T) {
	c := &clock{}
	dir := t.TempDir()
	s := openStore(t, dir, c, Options{MaxSeries: 2})
	for _, key := range []string{"pve-vm-9.0/100", "pve-vm-9.0/101"} {
		if err := s.Update(key, t0, make([]float64, 17)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update("pve-vm-9.0/102", t0, make([]float64, 17)); !errors.Is(err, ErrTooManySeries) {
		t.Errorf("third series: %v; want ErrTooManySeries", err)
	}
	for _, key := range []string{"pve-vm-9.0/../x", "pve-vm-9.1/100", "other/1", "pve-storage-9.0/x"} {
		if err := s.Update(key, t0, make([]float64, 17)); !errors.Is(err, ErrBadKey) {
			t.Errorf("Update(%q) = %v; want ErrBadKey", key, err)
		}
	}
	if err := s.Update("pve-vm-9.0/100", t0, make([]float64, 17)); !errors.Is(err, ErrOutdated) {
		t.Errorf("repeated update: %v; want ErrOutdated", err)
	}
	if err := s.Update("pve-vm-9.0/101", t0+10, make([]float64, 17)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	// expiry: a guest series goes a year and a day after its last update
	c.set(t0 + Year.Span() + 86400 + 5)
	if n := s.Expire(); n != 1 || s.Len() != 1 {
		t.Errorf("Expire removed %d, %d left; want 1 and 1", n, s.Len())
	}
	if _, err := os.Stat(s.Path("pve-vm-9.0/100")); !os.IsNotExist(err) {
		t.Errorf("expired file still there: %v", err)
	}
	if err := s.Update("pve-vm-9.0/100", t0+Year.Span()+86400, make([]float64, 17)); err != nil {
		t.Errorf("update of an expired series: %v", err)
	}
	s.Close()
	keep := openStore(t, dir, c, Options{Retain: -1})
	c.set(t0 + 20*Year.Span())
	if n := keep.Expire(); n != 0 {
		t.Errorf("Expire with Retain < 0 removed %d", n)
	}
	keep.Close()
}

// TestStoreConcurrent runs updates, queries and flushes together (for
// the race detector).
func TestStoreConcurrent(t *testing.T) {
	c := &clock{}
	c.set(t0 + 3600)
	s := openStore(t, t.TempDir(), c, Options{FlushInterval: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			key := fmt.Sprintf("pve-vm-9.0/%d", 100+g)
			for tm := int64(t0); tm < t0+3600; tm += 10 {
				if err := s.UpdateRecord(key, vmRecord(tm)); err != nil {
					t.Error(err)
					return
				}
				if tm%600 == 0 {
					if _, err := s.Query(key, Hour, Max); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.Flush(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, s.dir, c, Options{})
	defer s2.Close()
	for g := range 4 {
		res, err := s2.Query(fmt.Sprintf("pve-vm-9.0/%d", 100+g), Hour, Average)
		if err != nil {
			t.Fatal(err)
		}
		if v := res.Value(res.Len()-1, VMSchema.Index("netin")); v != 1000 || math.IsNaN(v) {
			t.Errorf("guest %d: last netin %v; want 1000", 100+g, v)
		}
	}
}

// TestStoreVersion1 serves a file of format version 1 as it is, and
// rewrites it as the current version on the first flush after an update.
func TestStoreVersion1(t *testing.T) {
	c := &clock{}
	key := "pve-vm-9.0/100"
	dirs := []string{t.TempDir(), t.TempDir()} // the second stays current
	for _, dir := range dirs {
		s := openStore(t, dir, c, Options{})
		for tm := int64(t0); tm < t0+7200; tm += 10 {
			if err := s.UpdateRecord(key, vmRecord(tm)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dirs[0], key)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, toV1(b, VMSchema), 0o640); err != nil {
		t.Fatal(err)
	}
	c.set(t0 + 7205)
	cur := openStore(t, dirs[1], c, Options{})
	want := answers(t, cur, key)
	s := openStore(t, dirs[0], c, Options{})
	if got := answers(t, s, key); got != want {
		t.Error("a version 1 file answers differently")
	}
	if err := s.Flush(); err != nil { // unchanged: stays version 1
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); b[6] != version1 {
		t.Errorf("unchanged file rewritten as version %d", b[6])
	}
	for _, s := range []*Store{s, cur} {
		for tm := int64(t0 + 7200); tm < t0+7800; tm += 10 {
			if err := s.UpdateRecord(key, vmRecord(tm)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(path)
	b, _ = os.ReadFile(filepath.Join(dirs[1], key))
	if !bytes.Equal(a, b) {
		t.Errorf("version 1 file after a flush (version %d, %d bytes) differs from one always current", a[6], len(a))
	}
}
