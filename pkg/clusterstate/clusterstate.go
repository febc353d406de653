// Package clusterstate is the cluster's status as pvestatd shares it: the
// status records one node publishes (its own figures, each guest's, each
// storage's), their encoding for the gossip, and the view of every node that
// pvestatd writes to a file for pveproxy and pvedaemon to answer
// /cluster/resources, /cluster/status and /nodes from (PVE's pmxcfs status
// records and .members, see docs/pvestatd.md).
//
// The package is pure: it encodes, decodes and reads a file, nothing else.
package clusterstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Node is a node's own figures (PVE's pve-node-9.0 record plus what
// /cluster/resources and /nodes show). Sizes are bytes, cpu a fraction.
type Node struct {
	Name         string  `json:"name"`
	Time         int64   `json:"time"` // when collected (Unix seconds)
	Uptime       int64   `json:"uptime"`
	Level        string  `json:"level"`
	CPU          float64 `json:"cpu"`
	MaxCPU       int     `json:"maxcpu"`
	IOWait       float64 `json:"iowait"`
	LoadAvg      float64 `json:"loadavg"`
	MemTotal     uint64  `json:"memtotal"`
	MemUsed      uint64  `json:"memused"`
	MemAvailable uint64  `json:"memavailable"`
	SwapTotal    uint64  `json:"swaptotal"`
	SwapUsed     uint64  `json:"swapused"`
	RootTotal    uint64  `json:"roottotal"`
	RootUsed     uint64  `json:"rootused"`
	NetIn        uint64  `json:"netin"`
	NetOut       uint64  `json:"netout"`
	CgroupMode   int     `json:"cgroup-mode,omitempty"`
	Version      string  `json:"version,omitempty"` // pve-manager version this node reports
}

// Guest is one VM's or container's status (PVE's pve-vm-9.0 record).
// Counters are totals since the guest started; stopped guests have zeros.
type Guest struct {
	VMID      int     `json:"vmid"`
	Type      string  `json:"type"` // qemu or lxc
	Name      string  `json:"name"`
	Status    string  `json:"status"` // running, stopped, paused, ... (QMP run state when running)
	Template  bool    `json:"template,omitempty"`
	Lock      string  `json:"lock,omitempty"`
	Tags      string  `json:"tags,omitempty"`
	Uptime    int64   `json:"uptime"`
	CPU       float64 `json:"cpu"`
	MaxCPU    float64 `json:"maxcpu"`
	Mem       uint64  `json:"mem"`
	MaxMem    uint64  `json:"maxmem"`
	MemHost   uint64  `json:"memhost"`
	Disk      uint64  `json:"disk"`
	MaxDisk   uint64  `json:"maxdisk"`
	NetIn     uint64  `json:"netin"`
	NetOut    uint64  `json:"netout"`
	DiskRead  uint64  `json:"diskread"`
	DiskWrite uint64  `json:"diskwrite"`
}

// Storage is one storage's status on the publishing node.
type Storage struct {
	ID      string `json:"storage"`
	Type    string `json:"plugintype"`
	Content string `json:"content"`
	Shared  bool   `json:"shared,omitempty"`
	Active  bool   `json:"active"`
	Total   uint64 `json:"total"`
	Used    uint64 `json:"used"`
}

// NodeState is everything one node publishes.
type NodeState struct {
	Node     Node      `json:"node"`
	Guests   []Guest   `json:"guests"`
	Storages []Storage `json:"storages"`
}

// Bounds of decoding: a state from a peer is refused beyond them.
const (
	// MaxStateSize bounds a decompressed node state (200 guests take
	// about 80 KB).
	MaxStateSize = 4 << 20
	// MaxViewSize bounds the view file (10,000 guests take about 4 MB).
	MaxViewSize = 256 << 20
)

// codec holds a zstd encoder and decoder; both are safe for concurrent use
// in their EncodeAll/DecodeAll forms.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var sharedCodec = sync.OnceValues(func() (*codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxViewSize), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &codec{enc: enc, dec: dec}, nil
})

// Encode serialises s for the gossip: JSON, zstd-compressed.
func (s *NodeState) Encode() ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	c, err := sharedCodec()
	if err != nil {
		return nil, err
	}
	return c.enc.EncodeAll(raw, nil), nil
}

// DecodeNodeState parses what Encode wrote; a state larger than
// MaxStateSize once decompressed is refused.
func DecodeNodeState(data []byte) (*NodeState, error) {
	c, err := sharedCodec()
	if err != nil {
		return nil, err
	}
	raw, err := c.dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("node state: %w", err)
	}
	if len(raw) > MaxStateSize {
		return nil, fmt.Errorf("node state: %d bytes, more than %d", len(raw), MaxStateSize)
	}
	var s NodeState
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("node state: %w", err)
	}
	return &s, nil
}

// Member is one node of the view: membership from the cluster config and
// the gossip, and its latest published state (nil if none arrived yet).
type Member struct {
	Name   string `json:"name"`
	NodeID int    `json:"nodeid"`
	IP     string `json:"ip,omitempty"`
	// Online is the gossip's verdict: the node answers.
	Online bool `json:"online"`
	// Received is when the state arrived (Unix seconds), 0 if never.
	Received int64      `json:"received,omitempty"`
	State    *NodeState `json:"state,omitempty"`
}

// View is the whole cluster as one node's pvestatd sees it.
type View struct {
	// Version grows with every change of the view.
	Version uint64 `json:"version"`
	// Generated is when the view was written (Unix seconds).
	Generated int64 `json:"generated"`
	// LocalNode is the node that wrote the view.
	LocalNode string `json:"local"`
	// Cluster is the cluster's name and config version; empty for a
	// standalone node.
	Cluster       string `json:"cluster,omitempty"`
	ConfigVersion int    `json:"config_version,omitempty"`
	Quorate       bool   `json:"quorate"`
	// Members are sorted by name.
	Members []Member `json:"members"`
}

// Member returns the member named name, or nil.
func (v *View) Member(name string) *Member {
	for i := range v.Members {
		if v.Members[i].Name == name {
			return &v.Members[i]
		}
	}
	return nil
}

// WriteFile writes v to path atomically (temporary file, fsync, rename) with
// mode perm, zstd-compressed JSON.
func WriteFile(path string, v *View, perm os.FileMode) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c, err := sharedCodec()
	if err != nil {
		return err
	}
	data := c.enc.EncodeAll(raw, nil)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadFile reads a view written by WriteFile.
func ReadFile(path string) (*View, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readView(f)
}

func readView(r io.Reader) (*View, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxViewSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxViewSize {
		return nil, errors.New("cluster view: file too large")
	}
	c, err := sharedCodec()
	if err != nil {
		return nil, err
	}
	raw, err := c.dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster view: %w", err)
	}
	var v View
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("cluster view: %w", err)
	}
	return &v, nil
}

// Reader reads the view file and keeps the parsed view until the file is
// replaced: a call costs one stat when nothing changed. It is safe for
// concurrent use. Derived data (such as pre-encoded API entries) can be
// cached beside the view with Derive.
type Reader struct {
	path    string
	recheck time.Duration

	mu      sync.Mutex
	key     fileKey
	checked time.Time // when key was last compared with the file
	view    *View
	derived map[string]any
}

// RecheckInterval is how long a Reader answers from the view it has
// before it looks at the file again. pvestatd rewrites the file every few
// seconds; a stat per call was an eighth of pvedaemon's CPU for a
// forwarded GET /cluster/status (docs/benchmarks.md).
const RecheckInterval = 100 * time.Millisecond

type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// NewReader returns a Reader of the view file at path that looks at the
// file at most every RecheckInterval.
func NewReader(path string) *Reader { return &Reader{path: path, recheck: RecheckInterval} }

// View returns the current view. A missing file is os.ErrNotExist (no
// pvestatd has written one yet).
func (r *Reader) View() (*View, error) {
	v, _, err := r.load()
	return v, err
}

func (r *Reader) load() (*View, map[string]any, error) {
	r.mu.Lock()
	if r.view != nil && time.Since(r.checked) < r.recheck {
		v, d := r.view, r.derived
		r.mu.Unlock()
		return v, d, nil
	}
	r.mu.Unlock()
	now := time.Now()
	fi, err := os.Stat(r.path)
	if err != nil {
		return nil, nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	k := fileKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st != nil {
		k.dev, k.ino = uint64(st.Dev), st.Ino
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.view != nil && k == r.key {
		r.checked = now
		return r.view, r.derived, nil
	}
	v, err := ReadFile(r.path)
	if err != nil {
		return nil, nil, err
	}
	r.key, r.view, r.derived, r.checked = k, v, map[string]any{}, now
	return v, r.derived, nil
}

// Derive returns the value computed by build from the current view,
// computing it once per view and name. build runs under the Reader's lock.
func (r *Reader) Derive(name string, build func(*View) (any, error)) (any, *View, error) {
	v, derived, err := r.load()
	if err != nil {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.view != v {
		// replaced between load and lock: compute for v without caching
		x, err := build(v)
		return x, v, err
	}
	if x, ok := derived[name]; ok {
		return x, v, nil
	}
	x, err := build(v)
	if err != nil {
		return nil, nil, err
	}
	derived[name] = x
	return x, v, nil
}
