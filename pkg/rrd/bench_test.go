package rrd

import (
	"fmt"
	"math"
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

// BenchmarkFlush writes n series that each got an update since the last
// flush, as pvestatd's periodic flush does: 10,000 storages (134 KB each)
// and 1,000 guests (1.1 MB each).
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
			v := make([]float64, bc.values)
			tm := int64(t0)
			touch := func() {
				tm += 60
				for i := range bc.n {
					v[0] = math.Mod(float64(i+int(tm)), 1000)
					if err := s.Update(fmt.Sprintf(bc.key, i), tm, v); err != nil {
						b.Fatal(err)
					}
				}
			}
			touch()
			if err := s.Flush(); err != nil { // create the files
				b.Fatal(err)
			}
			var bytes int64
			for b.Loop() {
				b.StopTimer()
				touch()
				b.StartTimer()
				if err := s.Flush(); err != nil {
					b.Fatal(err)
				}
				bytes += int64(bc.n) * s.series[fmt.Sprintf(bc.key, 0)].schema.FileSize()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(bc.n), "µs/series")
			b.SetBytes(int64(bc.n) * s.series[fmt.Sprintf(bc.key, 0)].schema.FileSize())
		})
	}
}
