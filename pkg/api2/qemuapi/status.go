package qemuapi

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/vmlist"
	"github.com/pvenode/pvenode/pkg/vmm"
)

// statusTimeout bounds the QMP part of one VM's status.
const statusTimeout = 3 * time.Second

// vmSummary is one VM's status in PVE's vmstatus shape. Integers are JSON
// integers and cpu a number, as PVE's clients expect.
type vmSummary struct {
	VMID       int     `json:"vmid"`
	Status     string  `json:"status"`
	Name       string  `json:"name"`
	CPUs       float64 `json:"cpus"`
	CPU        float64 `json:"cpu"`
	MaxMem     uint64  `json:"maxmem"`
	Mem        uint64  `json:"mem"`
	MemHost    uint64  `json:"memhost"`
	MaxDisk    uint64  `json:"maxdisk"`
	Disk       uint64  `json:"disk"`
	DiskRead   uint64  `json:"diskread"`
	DiskWrite  uint64  `json:"diskwrite"`
	NetIn      uint64  `json:"netin"`
	NetOut     uint64  `json:"netout"`
	Uptime     int64   `json:"uptime"`
	PID        int     `json:"pid,omitempty"`
	QMPStatus  string  `json:"qmpstatus,omitempty"`
	Template   int     `json:"template,omitempty"`
	Serial     int     `json:"serial,omitempty"`
	Lock       string  `json:"lock,omitempty"`
	Tags       *string `json:"tags,omitempty"`
	BalloonMin uint64  `json:"balloon_min,omitempty"`
	Shares     *int64  `json:"shares,omitempty"`

	RunningMachine string `json:"running-machine,omitempty"`
	RunningQEMU    string `json:"running-qemu,omitempty"`

	// status/current only.
	HA             *haState                            `json:"ha,omitempty"`
	Agent          *int                                `json:"agent,omitempty"`
	Spice          int                                 `json:"spice,omitempty"`
	Clipboard      string                              `json:"clipboard,omitempty"`
	BlockStat      map[string]qemu.QMPBlockDeviceStats `json:"blockstat,omitempty"`
	NICs           map[string]vmm.NICStats             `json:"nics,omitempty"`
	Balloon        uint64                              `json:"balloon,omitempty"`
	BalloonInfo    json.RawMessage                     `json:"ballooninfo,omitempty"`
	ProxmoxSupport json.RawMessage                     `json:"proxmox-support,omitempty"`
}

type haState struct {
	Managed int `json:"managed"`
}

// serialRe matches the serialN keys (conf_has_serial).
var serialRe = regexp.MustCompile(`^serial\d+$`)

// configSummary fills the figures PVE takes from the config alone.
func (d *Deps) configSummary(vmid int, cfg *qemu.Config) *vmSummary {
	p := cfg.Props
	s := &vmSummary{VMID: vmid, Status: "stopped", Name: p["name"], MaxDisk: p.BootDiskSize(),
		CPUs: p.CPUCount(d.HostCPUs), MaxMem: p.MaxMemBytes()}
	if s.Name == "" {
		s.Name = "VM " + strconv.Itoa(vmid)
	}
	if b, err := strconv.ParseUint(p["balloon"], 10, 64); err == nil && b > 0 {
		s.BalloonMin = b << 20
		shares := int64(1000)
		if v, err := strconv.ParseInt(p["shares"], 10, 64); err == nil {
			shares = v
		}
		s.Shares = &shares
	}
	if p["template"] == "1" {
		s.Template = 1
	}
	for k := range p {
		if serialRe.MatchString(k) {
			s.Serial = 1
			break
		}
	}
	s.Lock = p["lock"]
	if t, ok := p["tags"]; ok {
		s.Tags = &t
	}
	return s
}

// addStats fills the live figures of a running VM.
func (s *vmSummary) addStats(st vmm.Stats, full bool) {
	if !st.Running {
		return
	}
	s.Status = "running"
	s.PID = st.PID
	s.Uptime = int64(st.Uptime / time.Second)
	s.CPU = st.CPU
	s.Mem = st.MemUsed
	s.MemHost = st.MemHost
	s.DiskRead, s.DiskWrite = st.DiskRead, st.DiskWrite
	s.NetIn, s.NetOut = st.NetIn, st.NetOut
	s.QMPStatus = st.QMPStatus
	s.RunningMachine = st.RunningMachine
	s.RunningQEMU = st.RunningQEMU
	if full {
		s.BlockStat = st.BlockStats
		s.NICs = st.NICs
		s.ProxmoxSupport = st.ProxmoxSupport
		if b := st.Balloon; b != nil && b.MaxMem > 0 {
			s.Balloon = b.Actual
			s.MaxMem = b.MaxMem
			s.BalloonInfo = b.Raw
		}
	}
}

// vmStatus is GET .../status/current.
func (d *Deps) vmStatus(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	vmid := vmidOf(r)
	cfg, _, err := d.loadConfig(r.NodeName, vmid)
	if err != nil {
		return nil, err
	}
	s := d.configSummary(vmid, cfg)
	sctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := d.VMs.Stats(sctx, vmid, int(s.CPUs))
	if err != nil {
		return nil, err
	}
	s.addStats(st, true)
	s.HA = &haState{}
	if a, ok := cfg.Props["agent"]; ok {
		enabled := 0
		if ps, err := qemu.ParsePropString(a, "enabled"); err == nil {
			if v, ok := ps.Bool("enabled"); ok && v {
				enabled = 1
			}
		}
		s.Agent = &enabled
	}
	if vga, err := cfg.Props.VGA(); err == nil {
		if vga.IsSPICE() {
			s.Spice = 1
		}
		s.Clipboard = vga.Clipboard
	}
	return s, nil
}

// vmlist is GET /nodes/{node}/qemu: every VM of this node the caller may
// audit. Stopped VMs cost one config read; running ones add /proc and QMP
// (bounded by statusTimeout each).
func (d *Deps) vmlist(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	list, err := vmlist.Read(d.Config)
	if err != nil {
		return nil, err
	}
	full := r.Params.Bool("full", false)
	out := []*vmSummary{}
	for vmid, g := range list {
		if g.Node != r.NodeName || g.Type != "qemu" {
			continue
		}
		if !d.can(r.Identity.AuthID, "/vms/"+strconv.Itoa(vmid), "VM.Audit") {
			continue
		}
		cfg, _, err := d.loadConfig(r.NodeName, vmid)
		if err != nil {
			continue // a config removed or broken meanwhile: PVE skips it too
		}
		s := d.configSummary(vmid, cfg)
		if _, running := d.VMs.Running(vmid); running {
			sctx, cancel := context.WithTimeout(ctx, statusTimeout)
			st, err := d.VMs.Stats(sctx, vmid, int(s.CPUs))
			cancel()
			if err == nil {
				s.addStats(st, full)
			}
			if !full {
				s.QMPStatus = ""
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// vmdiridx is GET /nodes/{node}/qemu/{vmid}: the children this build
// implements.
func (d *Deps) vmdiridx(ctx context.Context, r *api.Request) (any, error) {
	return d.vmIndex(ctx, r, "config", "pending", "rrddata", "spiceproxy", "status", "termproxy", "vncproxy", "vncwebsocket")
}

// vmcmdidx is GET .../status.
func (d *Deps) vmcmdidx(ctx context.Context, r *api.Request) (any, error) {
	return d.vmIndex(ctx, r, "current", "reboot", "reset", "resume", "shutdown", "start", "stop", "suspend")
}

// vmIndex answers a directory index below an existing VM.
func (d *Deps) vmIndex(ctx context.Context, r *api.Request, children ...string) (any, error) {
	if _, _, err := d.loadConfig(r.NodeName, vmidOf(r)); err != nil {
		return nil, err
	}
	return api.DirIndex("subdir", children...)(ctx, r)
}

// volumesOf returns every volume a config references: drives (not
// CD-ROMs), unusedN, vmstate, in the current config, pending changes and
// snapshots, without duplicates.
func volumesOf(cfg *qemu.Config) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p qemu.Props) {
		for k, v := range p {
			var vol string
			switch {
			case isDriveKey(k) && !isCDROMValue(k, v):
				vol = driveVolume(k, v)
			case isUnusedKey(k), k == "vmstate":
				vol, _, _ = strings.Cut(v, ",")
				vol = strings.TrimPrefix(vol, "file=")
			}
			if vol != "" && !seen[vol] {
				seen[vol] = true
				out = append(out, vol)
			}
		}
	}
	add(cfg.Props)
	add(cfg.Pending)
	for _, s := range cfg.Snapshots {
		add(s)
	}
	return out
}

// destroyVM is DELETE /nodes/{node}/qemu/{vmid}: a qmdestroy task frees the
// VM's volumes and removes its config; with purge also its ACL entries and
// pool membership (there are no backup, replication or HA jobs yet).
func (d *Deps) destroyVM(ctx context.Context, r *api.Request) (any, error) {
	if err := d.needWorkers(); err != nil {
		return nil, err
	}
	vmid := vmidOf(r)
	skip, err := skiplock(r)
	if err != nil {
		return nil, err
	}
	cfg, _, err := d.loadConfig(r.NodeName, vmid)
	if err != nil {
		return nil, err
	}
	if err := checkLock(cfg, skip); err != nil {
		return nil, err
	}
	if cfg.Props["protection"] == "1" {
		return nil, fmt.Errorf("can't remove VM %d - protection mode enabled", vmid)
	}
	if _, running := d.VMs.Running(vmid); running {
		return nil, fmt.Errorf("VM %d is running - destroy failed", vmid)
	}
	node, purge := r.NodeName, r.Params.Bool("purge", false)
	unreferenced := r.Params.Bool("destroy-unreferenced-disks", false)
	return d.startTask(ctx, r, "qmdestroy", vmid, func(ctx context.Context, l *tasks.Log) error {
		return d.destroyLocked(ctx, l, node, vmid, skip, purge, unreferenced)
	})
}
