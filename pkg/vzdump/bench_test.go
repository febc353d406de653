package vzdump

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBackup measures the backup of a stopped VM with a 256 MiB raw
// disk (half random data, half text-like data) into a zstd VMA archive,
// against `cp` of the same image, and reports MB/s for both.
func BenchmarkBackup(b *testing.B) {
	e := newTestEnv(b)
	const size = 256 << 20
	imgdir := filepath.Join(e.store, "images", "100")
	if err := os.MkdirAll(imgdir, 0o755); err != nil {
		b.Fatal(err)
	}
	disk := filepath.Join(imgdir, "vm-100-disk-0.raw")
	f, err := os.Create(disk)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := 0; i < size>>20; i++ {
		for j := range buf {
			if i%2 == 0 {
				buf[j] = byte(rng.Uint32())
			} else {
				buf[j] = "abcdefgh "[rng.IntN(9)]
			}
		}
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	conf := "memory: 128\nscsi0: store:100/vm-100-disk-0.raw,size=256M\n"
	if err := e.root.WriteFile(e.eng.configName(100), []byte(conf), 0o640); err != nil {
		b.Fatal(err)
	}
	dump := filepath.Join(e.store, "dump")
	if err := os.MkdirAll(dump, 0o755); err != nil {
		b.Fatal(err)
	}

	var backupTime, cpTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res, err := e.eng.Run(context.Background(), []int{100}, Options{Compress: "zstd", Zstd: 0, DumpDir: dump}, &testOut{})
		if err != nil {
			b.Fatal(err)
		}
		backupTime += time.Since(t0)
		b.StopTimer()
		os.Remove(res[0].Archive)
		b.StartTimer()

		t0 = time.Now()
		if out, err := exec.Command("cp", disk, filepath.Join(dump, "copy.raw")).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		cpTime += time.Since(t0)
		b.StopTimer()
		os.Remove(filepath.Join(dump, "copy.raw"))
		b.StartTimer()
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * size / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(backupTime), "backup-MB/s")
	b.ReportMetric(mbps(cpTime), "cp-MB/s")
	fmt.Printf("backup (vma.zst): %.1f MB/s, cp: %.1f MB/s\n", mbps(backupTime), mbps(cpTime))
}
