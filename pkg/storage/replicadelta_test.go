package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestImportDelta: after a full import, a second state of the image goes
// over as the chunks that differ only; the replica then holds exactly the
// new state (raw and qcow2), its checksums follow, and a delta against
// another base, or against a replica changed behind the checksums' back,
// is refused with the replica untouched.
func TestImportDelta(t *testing.T) {
	needQemuImg(t)
	const size = 16<<20 + 4096 // a short last chunk
	first := replicaImage(1, size)
	second := bytes.Clone(first)
	copy(second[3<<20:], bytes.Repeat([]byte{0x77}, 200<<10)) // 4 chunks (one partial at each end)
	copy(second[size-100:], bytes.Repeat([]byte{0x55}, 100))  // the last, short chunk
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			d, root := newTestDir(t, "")
			volname := "100/vm-100-disk-0." + format
			path := filepath.Join(root, "images", volname)
			if _, _, ok, _ := d.ReplicaSums(volname); ok {
				t.Fatal("checksums of a missing replica")
			}
			if err := d.ImportRaw(ctx, volname, size, bytes.NewReader(first)); err != nil {
				t.Fatal(err)
			}
			gotSize, sums, ok, err := d.ReplicaSums(volname)
			if err != nil || !ok || gotSize != size {
				t.Fatalf("checksums after a full import: %d %v %v", gotSize, ok, err)
			}
			if want, _ := ChunkSums(bytes.NewReader(first), size); !bytes.Equal(sums, want) {
				t.Fatal("checksums do not match the imported image")
			}
			changed, length, err := DeltaPlan(bytes.NewReader(second), size, sums)
			if err != nil {
				t.Fatal(err)
			}
			// 200 KiB at 3 MiB: 4 chunks (3 MiB is chunk-aligned, so 3 whole + 1 partial)
			// plus the short last chunk
			if want := []int64{48 * ChunkSize, 49 * ChunkSize, 50 * ChunkSize, 51 * ChunkSize, 256 * ChunkSize}; !slices.Equal(changed, want) {
				t.Fatalf("changed chunks %v, want %v", changed, want)
			}
			delta, _ := io.ReadAll(DeltaReader(bytes.NewReader(second), size, changed))
			if int64(len(delta)) != length || length > 8*ChunkSize {
				t.Fatalf("delta of %d bytes (plan %d) for %d changed chunks", len(delta), length, len(changed))
			}
			base := SumsDigest(size, sums)
			if err := d.ImportDelta(ctx, volname, size, "00"+base[2:], bytes.NewReader(delta)); !errors.Is(err, ErrDeltaBase) {
				t.Fatalf("delta against another base: %v", err)
			}
			if err := d.ImportDelta(ctx, volname, size, base, bytes.NewReader(delta[:len(delta)-20])); !errors.Is(err, ErrStreamSize) {
				t.Fatalf("delta cut short: %v", err)
			}
			if got := rawContent(t, path, format); !bytes.Equal(got, first) {
				t.Fatal("a refused delta changed the replica")
			}
			if err := d.ImportDelta(ctx, volname, size, base, bytes.NewReader(delta)); err != nil {
				t.Fatal(err)
			}
			if got := rawContent(t, path, format); !bytes.Equal(got, second) {
				t.Fatal("replica after the delta differs from the source")
			}
			_, sums2, ok, _ := d.ReplicaSums(volname)
			if want, _ := ChunkSums(bytes.NewReader(second), size); !ok || !bytes.Equal(sums2, want) {
				t.Fatal("checksums after the delta do not match")
			}
			// the same delta again: its base is gone
			if err := d.ImportDelta(ctx, volname, size, base, bytes.NewReader(delta)); !errors.Is(err, ErrDeltaBase) {
				t.Fatalf("delta applied twice: %v", err)
			}
			// a replica changed by anything else has no usable checksums
			if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				f.Write([]byte{0})
				f.Close()
			}
			if _, _, ok, _ := d.ReplicaSums(volname); ok {
				t.Fatal("checksums still used for a replica changed outside imports")
			}
		})
	}
}

// Delta records must be chunks of the image.
func TestApplyDeltaRefusesBadRecords(t *testing.T) {
	const size = 3*ChunkSize + 10
	for name, rec := range map[string][]byte{
		"unaligned":     append(DeltaRecord(100, 10), make([]byte, 10)...),
		"past the end":  append(DeltaRecord(4*ChunkSize, 10), make([]byte, 10)...),
		"too long":      append(DeltaRecord(0, ChunkSize+1), make([]byte, ChunkSize+1)...),
		"short chunk":   append(DeltaRecord(0, 10), make([]byte, 10)...),
		"over the end":  append(DeltaRecord(3*ChunkSize, 11), make([]byte, 11)...),
		"no end record": append(DeltaRecord(0, ChunkSize), make([]byte, ChunkSize)...),
	} {
		f, err := os.CreateTemp(t.TempDir(), "img")
		if err != nil {
			t.Fatal(err)
		}
		in := rec
		if name != "no end record" {
			in = append(bytes.Clone(rec), DeltaEnd()...)
		}
		if err := applyDelta(context.Background(), f, size, bytes.NewReader(in), make([]byte, 4*32)); err == nil {
			t.Errorf("%s: accepted", name)
		}
		f.Close()
	}
}
