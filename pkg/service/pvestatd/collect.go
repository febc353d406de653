package pvestatd

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/nodestatus"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/vmlist"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// Bounds of one collection cycle.
const (
	// itemTimeout bounds one guest's or one storage's figures; an item
	// that takes longer is reported without them (a guest: config
	// figures and status "unknown"; a storage: inactive).
	itemTimeout = 5 * time.Second
	// maxParallel is how many items are collected at once.
	maxParallel = 4
)

// collector gathers this node's records: the node's figures, each guest's
// and each storage's. It never blocks on one item: each runs with its own
// timeout, and an item whose previous collection is still stuck (a hung
// NFS statfs, a QEMU in D state) is not started again until it returns, so
// stuck calls cannot pile up.
type collector struct {
	node     string
	root     *pvefs.Root
	status   *nodestatus.Collector
	vms      *vmm.Manager
	store    *storage.Host
	hostCPUs int
	log      *slog.Logger
	// timeout bounds each item (itemTimeout).
	timeout time.Duration

	mu   sync.Mutex
	busy map[string]bool // items whose last collection has not returned
}

func newCollector(node string, root *pvefs.Root, status *nodestatus.Collector, vms *vmm.Manager, store *storage.Host, log *slog.Logger) *collector {
	return &collector{node: node, root: root, status: status, vms: vms, store: store,
		hostCPUs: runtime.NumCPU(), log: log, timeout: itemTimeout, busy: map[string]bool{}}
}

// runItem runs fn for the item named key with the item timeout, in its
// own goroutine, and returns its result. It reports false when fn did not
// finish in time or the item is still busy from an earlier cycle; a late
// result is dropped.
func runItem[T any](ctx context.Context, c *collector, key string, fn func(ctx context.Context) T) (T, bool) {
	var zero T
	c.mu.Lock()
	if c.busy[key] {
		c.mu.Unlock()
		return zero, false
	}
	c.busy[key] = true
	c.mu.Unlock()
	ictx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res := make(chan T, 1)
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.busy, key)
			c.mu.Unlock()
		}()
		res <- fn(ictx)
	}()
	select {
	case v := <-res:
		return v, true
	case <-ictx.Done():
		c.log.Warn("status item timed out", "item", key, "timeout", c.timeout)
		return zero, false
	}
}

// collect returns this node's records now.
func (c *collector) collect(ctx context.Context) *clusterstate.NodeState {
	st := &clusterstate.NodeState{Node: clusterstate.Node{Name: c.node, Time: time.Now().Unix()}}
	type result struct {
		s   *nodestatus.Status
		err error
	}
	if r, ok := runItem(ctx, c, "node", func(ctx context.Context) result {
		s, err := c.status.Status(ctx)
		return result{s, err}
	}); ok && r.err == nil {
		st.Node = nodeRecord(c.node, st.Node.Time, r.s)
	} else if ok {
		c.log.Warn("node status", "err", r.err)
	}
	st.Guests = c.guests(ctx)
	st.Storages = c.storages(ctx)
	return st
}

// nodeRecord maps the node status to the published record.
func nodeRecord(node string, now int64, s *nodestatus.Status) clusterstate.Node {
	load, _ := strconv.ParseFloat(s.LoadAvg[0], 64)
	return clusterstate.Node{
		Name: node, Time: now, Uptime: s.Uptime, CPU: s.CPU, MaxCPU: s.CPUInfo.CPUs,
		IOWait: s.Wait, LoadAvg: load,
		MemTotal: uint64(s.Memory.Total), MemUsed: uint64(s.Memory.Used), MemAvailable: uint64(s.Memory.Available),
		SwapTotal: uint64(s.Swap.Total), SwapUsed: uint64(s.Swap.Used),
		RootTotal: uint64(s.RootFS.Total), RootUsed: uint64(s.RootFS.Used),
		Version: s.PVEVersion,
	}
}

// guests collects every VM whose config is on this node.
func (c *collector) guests(ctx context.Context) []clusterstate.Guest {
	list, err := vmlist.Read(c.root)
	if err != nil {
		c.log.Warn("guest list", "err", err)
		return nil
	}
	var ids []int
	for vmid, g := range list {
		if g.Node == c.node && g.Type == "qemu" {
			ids = append(ids, vmid)
		}
	}
	out := make([]clusterstate.Guest, len(ids))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, vmid := range ids {
		cfgName := "nodes/" + c.node + "/qemu-server/" + strconv.Itoa(vmid) + ".conf"
		raw, err := c.root.ReadFile(cfgName)
		g := clusterstate.Guest{VMID: vmid, Type: "qemu", Status: "unknown"}
		if err == nil {
			if cfg, perr := qemu.Parse(vmid, raw); perr == nil {
				g = configGuest(vmid, cfg.Props, c.hostCPUs)
			}
		}
		out[i] = g
		if _, running := c.vms.Running(vmid); !running {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cpus := int(out[i].MaxCPU)
			stats, ok := runItem(ctx, c, "vm/"+strconv.Itoa(vmid), func(ctx context.Context) vmm.Stats {
				st, _ := c.vms.Stats(ctx, vmid, cpus)
				return st
			})
			if !ok {
				out[i].Status = "unknown"
				return
			}
			addStats(&out[i], stats)
		}()
	}
	wg.Wait()
	return out
}

// configGuest is a guest's record from its config alone (a stopped VM).
func configGuest(vmid int, p qemu.Props, hostCPUs int) clusterstate.Guest {
	g := clusterstate.Guest{
		VMID: vmid, Type: "qemu", Name: p["name"], Status: "stopped",
		Template: p["template"] == "1", Lock: p["lock"], Tags: p["tags"],
		MaxCPU: p.CPUCount(hostCPUs), MaxMem: p.MaxMemBytes(), MaxDisk: p.BootDiskSize(),
	}
	if g.Name == "" {
		g.Name = "VM " + strconv.Itoa(vmid)
	}
	return g
}

// addStats fills a running guest's live figures; the status is QEMU's run
// state (running, paused, ...) as PVE publishes it.
func addStats(g *clusterstate.Guest, st vmm.Stats) {
	if !st.Running {
		return // ended meanwhile
	}
	g.Status = st.QMPStatus
	if g.Status == "" {
		g.Status = "running" // QMP did not answer in time; the process runs
	}
	g.Uptime = int64(st.Uptime / time.Second)
	g.CPU = st.CPU
	g.Mem, g.MemHost = st.MemUsed, st.MemHost
	g.DiskRead, g.DiskWrite = st.DiskRead, st.DiskWrite
	g.NetIn, g.NetOut = st.NetIn, st.NetOut
}

// storages collects each storage enabled on this node.
func (c *collector) storages(ctx context.Context) []clusterstate.Storage {
	cfg, err := c.store.Config()
	if err != nil {
		c.log.Warn("storage.cfg", "err", err)
		return nil
	}
	var out []clusterstate.Storage
	for _, s := range cfg.Sections {
		if storage.CheckEnabled(s, c.node) != nil {
			continue
		}
		rec := clusterstate.Storage{ID: s.ID, Type: s.Type, Content: s.Options["content"],
			Shared: s.Options["shared"] == "1" || storage.AlwaysShared(s.Type)}
		if s.Type == "dir" {
			dir, err := storage.NewDir(s, c.store.Dir)
			if err == nil {
				// Info runs without the item's deadline: a hung file system
				// then keeps this item busy (and later cycles skip it)
				// instead of leaving a stuck call behind every cycle.
				if info, ok := runItem(ctx, c, "storage/"+s.ID, func(ctx context.Context) storage.Info {
					return dir.Info(context.WithoutCancel(ctx), c.node)
				}); ok {
					rec.Active, rec.Total, rec.Used = info.Active, info.Total, info.Used
				}
			}
		}
		out = append(out, rec)
	}
	return out
}
