package qemuapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/qemu"
)

// pendingDelete parses the [PENDING] delete list ("key,!forcedkey"): key
// to forced.
func pendingDelete(v string) map[string]bool {
	out := map[string]bool{}
	for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		force := strings.HasPrefix(k, "!")
		k = strings.TrimPrefix(k, "!")
		if k != "" {
			out[k] = force
		}
	}
	return out
}

// printPendingDelete writes a pending delete list back, sorted.
func printPendingDelete(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if m[k] {
			keys[i] = "!" + k
		}
	}
	return strings.Join(keys, ",")
}

// vmConfig is GET .../config: the config with pending changes applied
// (unless current=1), or a snapshot's, typed as PVE types them, with the
// digest of the file.
func (d *Deps) vmConfig(ctx context.Context, r *api.Request) (any, error) {
	vmid := vmidOf(r)
	cfg, digest, err := d.loadConfig(r.NodeName, vmid)
	if err != nil {
		return nil, err
	}
	props := cfg.Props
	if snap, ok := r.Params.String("snapshot"); ok {
		sp, exists := cfg.Snapshots[snap]
		if !exists {
			return nil, fmt.Errorf("snapshot '%s' does not exist", snap)
		}
		props = sp
	} else if !r.Params.Bool("current", false) {
		props = applyPendingView(cfg)
	}
	schema := schemaProps()
	out := make(map[string]any, len(props)+1)
	for k, v := range props {
		out[k] = typedValue(schema, k, v)
	}
	if _, ok := out["cipassword"]; ok {
		out["cipassword"] = "**********"
	}
	out["digest"] = digest
	return out, nil
}

// applyPendingView returns the current keys with the pending values and
// deletions applied, without changing cfg.
func applyPendingView(cfg *qemu.Config) qemu.Props {
	out := make(qemu.Props, len(cfg.Props)+len(cfg.Pending))
	for k, v := range cfg.Props {
		out[k] = v
	}
	for k, v := range cfg.Pending {
		if k != "delete" {
			out[k] = v
		}
	}
	for k := range pendingDelete(cfg.Pending["delete"]) {
		delete(out, k)
	}
	return out
}

// pendingItem is one element of GET .../pending.
type pendingItem struct {
	Key     string  `json:"key"`
	Value   *string `json:"value,omitempty"`
	Pending *string `json:"pending,omitempty"`
	Delete  int     `json:"delete,omitempty"`
}

// vmPending is GET .../pending (PVE's config_with_pending_array).
func (d *Deps) vmPending(ctx context.Context, r *api.Request) (any, error) {
	cfg, _, err := d.loadConfig(r.NodeName, vmidOf(r))
	if err != nil {
		return nil, err
	}
	del := pendingDelete(cfg.Pending["delete"])
	str := func(s string) *string { return &s }
	force := func(k string) int {
		f, ok := del[k]
		switch {
		case !ok:
			return 0
		case f:
			return 2
		}
		return 1
	}
	res := []pendingItem{}
	for _, k := range slices.Sorted(maps.Keys(cfg.Props)) {
		it := pendingItem{Key: k, Value: str(cfg.Props[k]), Delete: force(k)}
		if p, ok := cfg.Pending[k]; ok {
			it.Pending = str(p)
		}
		res = append(res, it)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Pending)) {
		if _, cur := cfg.Props[k]; k == "delete" || cur {
			continue
		}
		res = append(res, pendingItem{Key: k, Pending: str(cfg.Pending[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(del)) {
		_, p := cfg.Pending[k]
		_, c := cfg.Props[k]
		if !p && !c {
			res = append(res, pendingItem{Key: k, Delete: force(k)})
		}
	}
	return res, nil
}
