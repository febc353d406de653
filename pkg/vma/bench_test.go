package vma

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkWriteRead writes and then extracts a 64 MiB device with mixed
// content (random clusters, zero clusters, clusters with zero blocks); the
// reported MB/s is device bytes per second for both directions together.
func BenchmarkWriteRead(b *testing.B) {
	const size = 64 << 20
	content := makeContent(contentSparse, size, 42)
	var archive bytes.Buffer
	archive.Grow(size)
	target := &memTarget{buf: make([]byte, size)}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		archive.Reset()
		w, err := NewWriter(&archive, testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("x")}},
			[]Device{{Name: "drive-scsi0", Size: size}})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.CopyDevice(1, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		r, err := NewReader(&archive)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Extract(func(Device) (io.WriterAt, error) { return target, nil }); err != nil {
			b.Fatal(err)
		}
	}
}
