package jobs

import (
	"sort"
	"strconv"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// IncludedGuests returns the guests a vzdump job or call selects, by node
// (PVE's get_included_guests): the members of "pool", else the "vmid"
// list, else with "all" every guest but the "exclude" list. A selected
// VMID that does not exist goes under node ""; guests on other nodes than
// the job's "node" are left out. Each list is sorted.
func IncludedGuests(opts map[string]string, guests map[int]vmlist.Guest, pools map[string]*access.Pool) map[string][]int {
	var ids []int
	switch {
	case opts["pool"] != "":
		if p := pools[opts["pool"]]; p != nil {
			for id := range p.VMs {
				ids = append(ids, id)
			}
		}
	case opts["vmid"] != "":
		for _, s := range access.SplitList(opts["vmid"]) {
			if id, err := strconv.Atoi(s); err == nil {
				ids = append(ids, id)
			}
		}
	case opts["all"] == "1":
		skip := map[int]bool{}
		for _, s := range access.SplitList(opts["exclude"]) {
			if id, err := strconv.Atoi(s); err == nil {
				skip[id] = true
			}
		}
		for id := range guests {
			if !skip[id] {
				ids = append(ids, id)
			}
		}
	}
	out := map[string][]int{}
	seen := map[int]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		g, ok := guests[id]
		if !ok {
			out[""] = append(out[""], id)
			continue
		}
		if n := opts["node"]; n != "" && n != g.Node {
			continue
		}
		out[g.Node] = append(out[g.Node], id)
	}
	for _, l := range out {
		sort.Ints(l)
	}
	return out
}
