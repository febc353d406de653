package rrd

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func vmValues() []float64 {
	v := make([]float64, len(VMSchema.ds))
	for i := range v {
		v[i] = float64(i * 1000)
	}
	return v
}

// BenchmarkSeriesUpdate is one 10-second reading of a guest into a
// Series in memory (every sixth closes a 1-minute row).
func BenchmarkSeriesUpdate(b *testing.B) {
	sr := NewSeries(VMSchema, t0)
	v := vmValues()
	tm := int64(t0)
	b.ReportAllocs()
	for b.Loop() {
		tm += 10
		v[6] += 10000
		if err := sr.Update(tm, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreUpdate is one reading of a guest through a Store (lookup,
// locking, the rows kept until a flush).
func BenchmarkStoreUpdate(b *testing.B) {
	s := openStore(b, b.TempDir(), &clock{}, Options{})
	defer s.Close()
	v := vmValues()
	tm := int64(t0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tm += 10
		v[6] += 10000
		if err := s.Update("pve-vm-9.0/100", tm, v); err != nil {
			b.Fatal(err)
		}
		if i%30000 == 29999 { // a flush every 5 minutes of 1000 guests
			b.StopTimer()
			s.Flush()
			b.StartTimer()
		}
	}
}

// BenchmarkStoreUpdateRecord adds the parsing of pvestatd's record.
func BenchmarkStoreUpdateRecord(b *testing.B) {
	s := openStore(b, b.TempDir(), &clock{}, Options{})
	defer s.Close()
	recs := make([]string, 30000)
	for i := range recs {
		recs[i] = vmRecord(t0 + 10*int64(i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%len(recs) == 0 && i > 0 { // start over with a new guest
			b.StopTimer()
			s.Flush()
			b.StartTimer()
		}
		if err := s.UpdateRecord(fmt.Sprintf("pve-vm-9.0/%d", 100+i/len(recs)), recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// yearStore is a store with one guest updated every minute for a year,
// flushed.
func yearStore(b *testing.B) (*Store, *clock) {
	c := &clock{}
	s := openStore(b, b.TempDir(), c, Options{})
	v := vmValues()
	tm := int64(t0)
	for ; tm < t0+365*86400; tm += 60 {
		v[6] += 60000
		if err := s.Update("pve-vm-9.0/100", tm, v); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	c.set(tm + 5)
	return s, c
}

// BenchmarkQuery answers PVE's rrddata for a guest with a year of
// history, JSON included.
func BenchmarkQuery(b *testing.B) {
	s, _ := yearStore(b)
	defer s.Close()
	for _, tf := range []Timeframe{Hour, Day, Year} {
		b.Run(string(tf), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				res, err := s.Query("pve-vm-9.0/100", tf, Average)
				if err != nil {
					b.Fatal(err)
				}
				j, _ := res.MarshalJSON()
				n = len(j)
			}
			b.ReportMetric(float64(n), "json-bytes")
		})
	}
}

// BenchmarkFlush is pvestatd's periodic flush: n series that each got 5
// minutes of readings at 10 s steps since the last one, 10,000 storages
// (134 KB files) or 1,000 guests (1.1 MB). It reports what a flush
// writes: written-B (bytes passed to write, journal included) and syncs;
// with RRD_BENCH_DEV naming the block device of the temporary directory
// (TMPDIR on a file system of its own, e.g. "loop0"), device-B, what the
// device was given to write (file system journal included). The kernel's
// per-process count (/proc/self/io write_bytes) is no use here: it counts
// whole folios, which on ext4 with large folios (Linux 6.16) are up to
// the whole file, while writeback writes only the dirty blocks.
func BenchmarkFlush(b *testing.B) {
	for _, bc := range []struct {
		name   string
		n      int
		key    string
		values int
	}{
		{"storage-10000", 10000, "pve-storage-9.0/pve1/s%d", 2},
		{"vm-1000", 1000, "pve-vm-9.0/%d", 17},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := openStore(b, b.TempDir(), &clock{}, Options{MaxSeries: bc.n})
			defer s.Close()
			keys := make([]string, bc.n)
			for i := range keys {
				keys[i] = fmt.Sprintf(bc.key, i)
			}
			v := make([]float64, bc.values)
			tm := int64(t0)
			touch := func() {
				for range 30 {
					tm += 10
					for i, k := range keys {
						v[0] = math.Mod(float64(i+int(tm)), 1000)
						if err := s.Update(k, tm, v); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			touch()
			if err := s.Flush(); err != nil { // create the files
				b.Fatal(err)
			}
			ops := &countOps{}
			s.ops = ops
			dev := os.Getenv("RRD_BENCH_DEV")
			var device int64
			for b.Loop() {
				b.StopTimer()
				touch()
				d0 := deviceWritten(b, dev)
				b.StartTimer()
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				device += deviceWritten(b, dev) - d0
				b.StartTimer()
			}
			n := float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/n/float64(bc.n), "µs/series")
			b.ReportMetric(float64(ops.written.Load())/n, "written-B/op")
			b.ReportMetric(float64(ops.syncs.Load())/n, "syncs/op")
			if dev != "" {
				b.ReportMetric(float64(device)/n, "device-B/op")
			}
		})
	}
}

// countOps counts what a Store writes and syncs.
type countOps struct {
	osOps
	written, syncs atomic.Int64
}

func (c *countOps) writeAt(f *os.File, b []byte, off int64) error {
	c.written.Add(int64(len(b)))
	return c.osOps.writeAt(f, b, off)
}

func (c *countOps) sync(f *os.File) error {
	c.syncs.Add(1)
	return c.osOps.sync(f)
}

func (c *countOps) datasync(f *os.File) error {
	c.syncs.Add(1)
	return c.osOps.datasync(f)
}

// deviceWritten returns the bytes written to the block device dev so
// far (/sys/block/<dev>/stat), 0 for "".
func deviceWritten(b *testing.B, dev string) int64 {
	if dev == "" {
		return 0
	}
	data, err := os.ReadFile("/sys/block/" + dev + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data))
	if len(f) < 7 {
		b.Fatalf("/sys/block/%s/stat: %q", dev, data)
	}
	sectors, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return sectors * 512
}
