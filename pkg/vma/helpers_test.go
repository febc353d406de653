package vma

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	testUUID  = [16]byte{0x6b, 0x1c, 0x2a, 0x9e, 0x51, 0x0f, 0x4d, 0x3b, 0x8a, 0x77, 0x10, 0x42, 0xc3, 0xd5, 0xe6, 0xf7}
	testCTime = time.Date(2026, 8, 24, 2, 30, 1, 0, time.UTC)
)

// contentKind selects how a test device is filled.
type contentKind int

const (
	contentRandom contentKind = iota // every byte random
	contentSparse                    // whole zero clusters, zero 4 KiB blocks, some data
	contentZero                      // all zero
)

// makeContent builds deterministic device content of the given size.
func makeContent(kind contentKind, size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := make([]byte, size)
	switch kind {
	case contentRandom:
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
	case contentSparse:
		for blk := 0; blk*blockSize < size; blk++ {
			cluster := blk / blocksPerCluster
			if cluster%3 == 1 || rng.IntN(3) == 0 {
				continue // whole zero clusters and scattered zero blocks
			}
			end := min((blk+1)*blockSize, size)
			for i := blk * blockSize; i < end; i++ {
				data[i] = byte(rng.Uint32())
			}
			// Leave a block whose only non-zero byte is its last one.
			if blk%7 == 0 {
				clear(data[blk*blockSize : end-1])
			}
		}
	}
	return data
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

// extractToFiles extracts r into sparse files under dir and returns each
// device's content keyed by name.
func extractToFiles(t *testing.T, r *Reader, dir string) map[string][]byte {
	t.Helper()
	files := map[string]*os.File{}
	err := r.Extract(func(d Device) (io.WriterAt, error) {
		f, err := os.Create(filepath.Join(dir, d.Name+".raw"))
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(d.Size); err != nil {
			return nil, err
		}
		files[d.Name] = f
		return f, nil
	})
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	out := map[string][]byte{}
	for name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// memTarget is an in-memory WriterAt bounded to its size; writes outside
// it fail, which the tests treat as a reader bug.
type memTarget struct {
	buf []byte
}

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.buf)) {
		return 0, fmt.Errorf("write [%d,%d) outside target of %d bytes", off, off+int64(len(p)), len(m.buf))
	}
	return copy(m.buf[off:], p), nil
}

// buildArchive writes a complete archive of the given devices, sequentially.
func buildArchive(t testing.TB, configs []Config, names []string, contents [][]byte) []byte {
	t.Helper()
	devs := make([]Device, len(names))
	for i, n := range names {
		devs[i] = Device{Name: n, Size: int64(len(contents[i]))}
	}
	var out bytes.Buffer
	w, err := NewWriter(&out, testUUID, testCTime, configs, devs)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	for i := range devs {
		if err := w.CopyDevice(i+1, bytes.NewReader(contents[i])); err != nil {
			t.Fatalf("CopyDevice(%d): %v", i+1, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}
