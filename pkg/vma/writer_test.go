package vma

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func TestNewWriterRejects(t *testing.T) {
	cfg := []Config{{Name: "qemu-server.conf", Data: []byte("x")}}
	dev := []Device{{Name: "drive-scsi0", Size: 4096}}
	manyConfigs := make([]Config, 257)
	for i := range manyConfigs {
		manyConfigs[i] = Config{Name: "c", Data: nil}
	}
	manyDevices := make([]Device, 255)
	for i := range manyDevices {
		manyDevices[i] = Device{Name: "d" + strings.Repeat("x", i), Size: 1}
	}
	bigConfigs := make([]Config, 9) // 9 * 64 KiB > 512 KiB header limit
	for i := range bigConfigs {
		bigConfigs[i] = Config{Name: "big.conf", Data: make([]byte, maxBlobLen)}
	}
	tests := []struct {
		name    string
		configs []Config
		devices []Device
		want    string
	}{
		{"nothing", nil, nil, "at least one config or device"},
		{"empty config name", []Config{{Name: ""}}, dev, "is not a file name"},
		{"config path", []Config{{Name: "etc/qemu.conf"}}, dev, "contains '/'"},
		{"config too large", []Config{{Name: "a", Data: make([]byte, maxBlobLen+1)}}, dev, "exceeds the 65535-byte limit"},
		{"too many configs", manyConfigs, dev, "257 configs"},
		{"too many devices", cfg, manyDevices, "255 devices"},
		{"header too large", bigConfigs, dev, "exceeds the 524288-byte limit"},
		{"zero size", cfg, []Device{{Name: "drive-scsi0"}}, "has size 0"},
		{"huge size", cfg, []Device{{Name: "drive-scsi0", Size: maxDeviceSize + 1}}, "above the format's limit"},
		{"vmstate", cfg, []Device{{Name: "vmstate", Size: 1}}, "reserved"},
		{"empty name", cfg, []Device{{Size: 1}}, "empty name"},
		{"duplicate name", cfg, []Device{{Name: "a", Size: 1}, {Name: "a", Size: 2}}, `"a" used twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := NewWriter(&out, testUUID, testCTime, tc.configs, tc.devices)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", out.Len())
			}
		})
	}
	// The limits themselves are accepted.
	maxOK := make([]Device, maxWriterDevices)
	copy(maxOK, manyDevices)
	if _, err := NewWriter(io.Discard, testUUID, testCTime, manyConfigs[:256], maxOK); err != nil {
		t.Errorf("256 configs and 254 devices: %v", err)
	}
}

// TestBlobTableGrowth covers the case where PVE's own growth rule falls
// one byte short: the header must still be readable.
func TestBlobTableGrowth(t *testing.T) {
	// The first blob starts at offset 1; a name of 509 bytes (510 with its
	// NUL, 512 with the length prefix) is the first case PVE gets wrong.
	for _, n := range []int{508, 509, 510, 511, 1021, 1022} {
		data := bytes.Repeat([]byte{'z'}, n)
		name := strings.Repeat("n", n)
		var out bytes.Buffer
		w, err := NewWriter(&out, testUUID, testCTime, []Config{{Name: name, Data: data}}, []Device{{Name: "d", Size: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteCluster(1, 0, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if hs := getU32(out.Bytes(), offHeaderSize); hs%512 != 0 {
			t.Errorf("data %d: header size %d not a multiple of 512", n, hs)
		}
		r, err := NewReader(&out)
		if err != nil {
			t.Fatalf("data %d: %v", n, err)
		}
		if got := r.Configs()[0]; got.Name != name || !bytes.Equal(got.Data, data) {
			t.Errorf("data %d: config round trip differs", n)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	newW := func(t *testing.T) *Writer {
		w, err := NewWriter(io.Discard, testUUID, testCTime, nil,
			[]Device{{Name: "drive-scsi0", Size: 2*ClusterSize + 100}, {Name: "drive-scsi1", Size: ClusterSize}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	full := make([]byte, ClusterSize)
	tests := []struct {
		name string
		do   func(w *Writer) error
		want string
	}{
		{"device 0", func(w *Writer) error { return w.WriteCluster(0, 0, full) }, "no device with id 0"},
		{"device 3", func(w *Writer) error { return w.WriteCluster(3, 0, full) }, "no device with id 3"},
		{"cluster beyond end", func(w *Writer) error { return w.WriteCluster(1, 3, full) }, "cluster 3 beyond device end"},
		{"short cluster", func(w *Writer) error { return w.WriteCluster(1, 0, full[:100]) }, "cluster 0 has 100 bytes, want 65536"},
		{"short last cluster", func(w *Writer) error { return w.WriteCluster(1, 2, full[:99]) }, "cluster 2 has 99 bytes, want 100"},
		{"long cluster", func(w *Writer) error { return w.WriteCluster(1, 0, make([]byte, ClusterSize+1)) }, "has 65537 bytes"},
		{"twice", func(w *Writer) error {
			if err := w.WriteCluster(2, 0, full); err != nil {
				return err
			}
			return w.WriteCluster(2, 0, full)
		}, "cluster 0 written twice"},
		{"incomplete", func(w *Writer) error {
			w.WriteCluster(1, 0, full)
			w.WriteCluster(2, 0, nil)
			return w.Close()
		}, `device "drive-scsi0" incomplete: 1 of 3 clusters written, first missing cluster 1`},
		{"short source", func(w *Writer) error { return w.CopyDevice(1, bytes.NewReader(make([]byte, 70000))) }, "source ended at byte 70000 of 131172"},
		{"close twice", func(w *Writer) error { w.Close(); return w.Close() }, "already closed"},
		{"write after close", func(w *Writer) error { w.Close(); return w.WriteCluster(2, 0, full) }, "writer is closed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(newW(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// failAfter accepts n writes, then fails.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("pipe closed")
	}
	f.n--
	return len(p), nil
}

func TestWriterOutputError(t *testing.T) {
	if _, err := NewWriter(&failAfter{0}, testUUID, testCTime, nil, []Device{{Name: "d", Size: 1}}); err == nil ||
		!strings.Contains(err.Error(), "writing header: pipe closed") {
		t.Errorf("NewWriter error = %v", err)
	}
	w, err := NewWriter(&failAfter{1}, testUUID, testCTime, nil, []Device{{Name: "d", Size: 100 * ClusterSize}})
	if err != nil {
		t.Fatal(err)
	}
	err = w.CopyDevice(1, bytes.NewReader(bytes.Repeat([]byte{1}, 100*ClusterSize)))
	if err == nil || !strings.Contains(err.Error(), "writing extent 0 at offset 12800: pipe closed") {
		t.Errorf("CopyDevice error = %v", err)
	}
	if err := w.WriteCluster(1, 99, nil); err == nil {
		t.Error("WriteCluster after output failure succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after output failure succeeded")
	}
}

// TestConcurrentWrites feeds the devices from several goroutines (run with
// -race); the result must extract correctly.
func TestConcurrentWrites(t *testing.T) {
	contents := [][]byte{
		makeContent(contentRandom, 20*ClusterSize+7, 1),
		makeContent(contentSparse, 30*ClusterSize, 2),
		makeContent(contentRandom, 5000, 3),
	}
	devs := make([]Device, len(contents))
	for i, c := range contents {
		devs[i] = Device{Name: "drive-scsi" + string(rune('0'+i)), Size: int64(len(c))}
	}
	var out bytes.Buffer
	w, err := NewWriter(&out, testUUID, testCTime, []Config{{Name: "qemu-server.conf", Data: []byte("x")}}, devs)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(contents))
	for i, c := range contents {
		wg.Go(func() { errs[i] = w.CopyDevice(i+1, bytes.NewReader(c)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	files := extractToFiles(t, r, t.TempDir())
	for i, d := range devs {
		if sha(files[d.Name]) != sha(contents[i]) {
			t.Errorf("%s differs", d.Name)
		}
	}
}
