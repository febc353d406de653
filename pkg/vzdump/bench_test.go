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

	mbps := func(n int, d time.Duration) float64 { return float64(n) * size / 1e6 / d.Seconds() }
	// The backup writes and fsyncs its archive (a backup must be on disk
	// when the task says OK); cp is measured with and without a sync of
	// its copy, so the comparison is fair either way.
	for _, comp := range []string{"0", "zstd"} {
		b.Run("vma-compress="+comp, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				t0 := time.Now()
				res, err := e.eng.Run(context.Background(), []int{100}, Options{Compress: comp, Zstd: 1, DumpDir: dump}, &testOut{})
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
				b.StopTimer()
				os.Remove(res[0].Archive)
				b.StartTimer()
			}
			b.ReportMetric(mbps(b.N, total), "MB/s")
		})
	}
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("cp-sync=%v", sync), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				dst := filepath.Join(dump, "copy.raw")
				t0 := time.Now()
				if out, err := exec.Command("cp", disk, dst).CombinedOutput(); err != nil {
					b.Fatalf("cp: %v: %s", err, out)
				}
				if sync {
					if out, err := exec.Command("sync", dst).CombinedOutput(); err != nil {
						b.Fatalf("sync: %v: %s", err, out)
					}
				}
				total += time.Since(t0)
				b.StopTimer()
				os.Remove(dst)
				b.StartTimer()
			}
			b.ReportMetric(mbps(b.N, total), "MB/s")
		})
	}
}
