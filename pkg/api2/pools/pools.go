package pools

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/vmlist"
)

// Service is what the pool methods need of access control;
// *access.Authenticator has it.
type Service interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
	// UserCfg is the current user.cfg (shared: read only).
	UserCfg() *access.UserCfg
	// Invalidate makes the next UserCfg re-read user.cfg; called after
	// every write, so the next request sees it.
	Invalidate()
}

// Deps are the collaborators of the pool methods. All are required.
type Deps struct {
	Access Service
	// Root is the config root (/etc/pve): user.cfg for the writes, and
	// the guest configs and storage.cfg that decide which members exist.
	Root *pvefs.Root
}

// Methods returns the declarations of this package.
func Methods(d Deps) []api.Method {
	return []api.Method{
		{
			Name: "delete_pool", Path: "/pools", HTTP: "DELETE",
			Description: "Delete pool.",
			Protected:   true,
			Permissions: api.Permissions{
				Description: "Only a pool without members (guests, storage or sub-pools that exist) can be deleted.",
				Check:       []any{"perm", "/pool/{poolid}", []any{"Pool.Allocate"}},
			},
			Params: map[string]*api.Schema{
				"poolid": api.Str().Fmt("pve-poolid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deletePool,
		},
		{
			Name: "index", Path: "/pools", HTTP: "GET",
			Description: "List pools or get pool configuration.",
			Permissions: api.Permissions{
				Description: "Lists the pools the caller holds Pool.Audit on; with poolid, that pool (Pool.Audit on it required).",
				User:        "all",
			},
			Params: map[string]*api.Schema{
				"poolid": api.Str().Fmt("pve-poolid").Opt().TT("<string>"),
				"type":   api.Str().Enums("qemu", "lxc", "storage").Opt().Req("poolid"),
			},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"members": api.Arr(api.Obj(map[string]*api.Schema{
					"id":      api.Str(),
					"node":    api.Str(),
					"storage": api.Str().Opt(),
					"type":    api.Str().Enums("qemu", "lxc", "openvz", "storage"),
					"vmid":    api.Int().Opt(),
				}).Additional(true)).Opt(),
				"poolid": api.Str(),
			})).WithLinks(api.Link{Href: "{poolid}", Rel: "child"}),
			Handle: d.index,
		},
		{
			Name: "create_pool", Path: "/pools", HTTP: "POST",
			Description: "Create new pool.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/pool/{poolid}", []any{"Pool.Allocate"}}},
			Params: map[string]*api.Schema{
				"comment": api.Str().Opt().TT("<string>"),
				"poolid":  api.Str().Fmt("pve-poolid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.createPool,
		},
		{
			Name: "update_pool", Path: "/pools", HTTP: "PUT",
			Description: "Update pool.",
			Protected:   true,
			Permissions: api.Permissions{
				Description: updatePermDesc,
				Check:       []any{"perm", "/pool/{poolid}", []any{"Pool.Allocate"}},
			},
			Params:  updateParams(),
			Returns: api.Null(),
			Handle:  d.updatePool,
		},
		{
			Name: "delete_pool_deprecated", Path: "/pools/{poolid}", HTTP: "DELETE",
			Description: "Delete pool (deprecated, no support for nested pools, use 'DELETE /pools/?poolid={poolid}').",
			Protected:   true,
			Permissions: api.Permissions{
				Description: "Only a pool without members (guests, storage or sub-pools that exist) can be deleted.",
				Check:       []any{"perm", "/pool/{poolid}", []any{"Pool.Allocate"}},
			},
			Params: map[string]*api.Schema{
				"poolid": api.Str().Fmt("pve-poolid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deletePool,
		},
		{
			Name: "read_pool", Path: "/pools/{poolid}", HTTP: "GET",
			Description: "Get pool configuration (deprecated, no support for nested pools, use 'GET /pools/?poolid={poolid}').",
			Permissions: api.Permissions{Check: []any{"perm", "/pool/{poolid}", []any{"Pool.Audit"}}},
			Params: map[string]*api.Schema{
				"poolid": api.Str().Fmt("pve-poolid").TT("<string>"),
				"type":   api.Str().Enums("qemu", "lxc", "storage").Opt(),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"members": api.Arr(api.Obj(map[string]*api.Schema{
					"id":      api.Str(),
					"node":    api.Str(),
					"storage": api.Str().Opt(),
					"type":    api.Str().Enums("qemu", "lxc", "openvz", "storage"),
					"vmid":    api.Int().Opt(),
				}).Additional(true)),
			}).Additional(false),
			Handle: d.readPool,
		},
		{
			Name: "update_pool_deprecated", Path: "/pools/{poolid}", HTTP: "PUT",
			Description: "Update pool data (deprecated, no support for nested pools - use 'PUT /pools/?poolid={poolid}' instead).",
			Protected:   true,
			Permissions: api.Permissions{
				Description: updatePermDesc,
				Check:       []any{"perm", "/pool/{poolid}", []any{"Pool.Allocate"}},
			},
			Params:  updateParams(),
			Returns: api.Null(),
			Handle:  d.updatePool,
		},
	}
}

const updatePermDesc = "Adding or removing a member also needs Permissions.Modify, or VM.Allocate (guests) or " +
	"Datastore.Allocate (storage), on that member; moving a guest needs Pool.Allocate on its old pool."

// updateParams are the parameters of both update methods (a fresh copy
// each, as declarations must not share schemas).
func updateParams() map[string]*api.Schema {
	return map[string]*api.Schema{
		"allow-move": api.Bool().Def(0).Opt().TT("<boolean>"),
		"comment":    api.Str().Opt().TT("<string>"),
		"delete":     api.Bool().Def(0).Opt().TT("<boolean>"),
		"poolid":     api.Str().Fmt("pve-poolid").TT("<string>"),
		"storage":    api.Str().Fmt("pve-storage-id-list").Opt().TT("<string>"),
		"vms":        api.Str().Fmt("pve-vmid-list").Opt().TT("<string>"),
	}
}

// poolEntry is an element of GET /pools: members only when one pool was
// asked for (then always present, possibly empty).
type poolEntry struct {
	PoolID  string `json:"poolid"`
	Comment string `json:"comment,omitempty"`
	Members []any  `json:"members,omitzero"`
}

// guestMember is a guest of a pool as PVE reports it without RRD data.
type guestMember struct {
	ID     string `json:"id"` // "<type>/<vmid>"
	VMID   int    `json:"vmid"`
	Node   string `json:"node"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// storageMember is a storage of a pool as PVE reports it without RRD data.
type storageMember struct {
	ID         string `json:"id"` // "storage/<node>/<storage>"
	Storage    string `json:"storage"`
	Node       string `json:"node"`
	Type       string `json:"type"` // always "storage"
	PluginType string `json:"plugintype"`
	Status     string `json:"status"`
	Shared     int    `json:"shared"`
	Content    string `json:"content"`
}

// statusUnknown is PVE's status of a member it has no RRD data for.
const statusUnknown = "unknown"

func (d Deps) index(ctx context.Context, r *api.Request) (any, error) {
	return d.pools(r)
}

// pools is GET /pools: every pool the caller may audit, or the one named
// by poolid with its members. PVE tests poolid for Perl truth, so "0"
// lists all pools.
func (d Deps) pools(r *api.Request) ([]poolEntry, error) {
	cfg := d.Access.UserCfg()
	authid := r.Identity.AuthID
	res := []poolEntry{}
	poolid := r.Params.Get("poolid")
	if poolid == "" || poolid == "0" {
		for _, name := range sortedKeys(cfg.Pools) {
			if !d.Access.CheckPrivs(authid, "/pool/"+name, []string{"Pool.Audit"}, false) {
				continue
			}
			res = append(res, poolEntry{PoolID: name, Comment: cfg.Pools[name].Comment})
		}
		return res, nil
	}
	// PVE 9 runs this check but ignores its result, so that any user can
	// read any pool; we refuse, as the method's description says.
	if !d.Access.CheckPrivs(authid, "/pool/"+poolid, []string{"Pool.Audit"}, false) {
		return nil, api.PermissionDenied("/pool/"+poolid, "Pool.Audit")
	}
	pool := cfg.Pools[poolid]
	if pool == nil {
		return nil, die("pool '%s' does not exist", poolid)
	}
	members, err := d.members(pool, r.Params.Get("type"), r.NodeName)
	if err != nil {
		return nil, err
	}
	return append(res, poolEntry{PoolID: poolid, Comment: pool.Comment, Members: members}), nil
}

// members lists the guests of pool that exist (of type typ, if set) and,
// unless typ names a guest type, its storages that exist.
func (d Deps) members(pool *access.Pool, typ, localNode string) ([]any, error) {
	if d.Root == nil {
		return nil, errNoRoot()
	}
	members := []any{}
	vmlist, err := vmlist.Read(d.Root)
	if err != nil {
		return nil, err
	}
	for _, vmid := range sortedVMIDs(pool.VMs) {
		g, ok := vmlist[vmid]
		if !ok || typ != "" && typ != g.Type {
			continue
		}
		members = append(members, guestMember{
			ID: g.Type + "/" + strconv.Itoa(vmid), VMID: vmid, Node: g.Node, Type: g.Type, Status: statusUnknown,
		})
	}
	if typ != "" && typ != "storage" {
		return members, nil
	}
	stores, err := readStorageCfg(d.Root)
	if err != nil {
		return nil, err
	}
	for _, id := range sortedKeys(pool.Storage) {
		sc := stores[id]
		if sc == nil {
			continue
		}
		node := localNode // prefer the local node
		if sc.Nodes != nil && !sc.Nodes[node] {
			if nodes := sortedKeys(sc.Nodes); len(nodes) > 0 {
				node = nodes[0]
			}
		}
		shared := 0
		if sc.Shared {
			shared = 1
		}
		members = append(members, storageMember{
			ID: "storage/" + node + "/" + id, Storage: id, Node: node, Type: "storage",
			PluginType: sc.Type, Status: statusUnknown, Shared: shared, Content: strings.Join(sc.Content, ","),
		})
	}
	return members, nil
}

// readPool is the deprecated GET /pools/{poolid}: the first entry of the
// index answer (null when there is none).
func (d Deps) readPool(ctx context.Context, r *api.Request) (any, error) {
	res, err := d.pools(r)
	if err != nil || len(res) == 0 {
		return nil, err
	}
	return res[0], nil
}

func (d Deps) createPool(ctx context.Context, r *api.Request) (any, error) {
	poolid := r.Params.Get("poolid")
	comment := r.Params.Get("comment")
	return nil, d.updateUserCfg(ctx, "create pool failed", func(cfg *access.UserCfg) error {
		if cfg.Pools[poolid] != nil {
			return die("pool '%s' already exists", poolid)
		}
		parent, leaf := "", poolid
		if i := strings.LastIndexByte(poolid, '/'); i >= 0 {
			parent, leaf = poolid[:i], poolid[i+1:]
			if cfg.Pools[parent] == nil {
				return die("parent '%s' of pool '%s' does not exist", parent, poolid)
			}
		}
		if !startsWithLetter(leaf) {
			return die("pool name must start with a letter")
		}
		p := &access.Pool{VMs: map[int]bool{}, Storage: map[string]bool{}, Parent: parent}
		if comment != "0" {
			p.Comment = comment
		}
		cfg.Pools[poolid] = p
		return nil
	})
}

func (d Deps) updatePool(ctx context.Context, r *api.Request) (any, error) {
	p := r.Params
	poolid := p.Get("poolid")
	remove := p.Bool("delete", false)
	allowMove := p.Bool("allow-move", false)
	authid := r.Identity.AuthID
	return nil, d.updateUserCfg(ctx, "update pools failed", func(cfg *access.UserCfg) error {
		pool := cfg.Pools[poolid]
		if pool == nil {
			return die("pool '%s' does not exist", poolid)
		}
		if c, ok := p.String("comment"); ok {
			pool.Comment = c
		}
		if vms, ok := p.String("vms"); ok {
			for _, v := range access.SplitList(vms) {
				if err := d.checkPermModify(authid, "/vms/"+v, "VM.Allocate"); err != nil {
					return err
				}
				vmid, err := strconv.Atoi(v)
				if err != nil {
					return die("invalid VM ID '%s'", v) // the parameter format excludes it
				}
				if err := d.updateVM(cfg, poolid, vmid, remove, allowMove, authid); err != nil {
					return err
				}
			}
		}
		if stores, ok := p.String("storage"); ok {
			for _, id := range access.SplitList(stores) {
				if err := d.checkPermModify(authid, "/storage/"+id, "Datastore.Allocate"); err != nil {
					return err
				}
				switch {
				case remove && !pool.Storage[id]:
					return die("Storage '%s' is not a pool member", id)
				case remove:
					delete(pool.Storage, id)
				case pool.Storage[id]:
					return die("Storage '%s' is already a pool member", id)
				default:
					pool.Storage[id] = true
				}
			}
		}
		return nil
	})
}

// updateVM adds vmid to pool poolid, or removes it with remove. Adding a
// guest that is in another pool needs allowMove and Pool.Allocate on that
// pool. Whether the guest exists is not checked, as in PVE.
func (d Deps) updateVM(cfg *access.UserCfg, poolid string, vmid int, remove, allowMove bool, authid string) error {
	pool := cfg.Pools[poolid]
	if remove {
		if !pool.VMs[vmid] {
			return die("VM %d is not a pool member", vmid)
		}
		delete(pool.VMs, vmid)
		return nil
	}
	if pool.VMs[vmid] {
		return die("VM %d is already a pool member", vmid)
	}
	if other := cfg.PoolOfVM(vmid); other != "" {
		if !allowMove {
			return die("VM %d belongs already to pool '%s' and 'allow-move' is not set", vmid, other)
		}
		if !d.Access.CheckPrivs(authid, "/pool/"+other, []string{"Pool.Allocate"}, false) {
			return api.PermissionDenied("/pool/"+other, "Pool.Allocate")
		}
		delete(cfg.Pools[other].VMs, vmid)
	}
	pool.VMs[vmid] = true
	return nil
}

// checkPermModify is PVE's check_perm_modify: Permissions.Modify or the
// allocate privilege of the member's kind on path.
func (d Deps) checkPermModify(authid, path, allocate string) error {
	privs := []string{"Permissions.Modify", allocate}
	if d.Access.CheckPrivs(authid, path, privs, true) {
		return nil
	}
	return api.PermissionDenied(path, privs...)
}

func (d Deps) deletePool(ctx context.Context, r *api.Request) (any, error) {
	poolid := r.Params.Get("poolid")
	return nil, d.updateUserCfg(ctx, "delete pool failed", func(cfg *access.UserCfg) error {
		vmlist, err := vmlist.Read(d.Root)
		if err != nil {
			return err
		}
		stores, err := readStorageCfg(d.Root)
		if err != nil {
			return err
		}
		pool := cfg.Pools[poolid]
		if pool == nil {
			return die("pool '%s' does not exist", poolid)
		}
		for _, name := range sortedKeys(cfg.Pools) {
			if cfg.Pools[name].Parent == poolid {
				return die("pool '%s' is not empty (contains pool '%s')", poolid, name)
			}
		}
		// members that no longer exist do not count (destroyed guests,
		// removed storage); PVE walks them in string order
		for _, vmid := range sortedVMIDs(pool.VMs) {
			if _, ok := vmlist[vmid]; ok {
				return die("pool '%s' is not empty (contains VM %d)", poolid, vmid)
			}
		}
		for _, id := range sortedKeys(pool.Storage) {
			if stores[id] != nil {
				return die("pool '%s' is not empty (contains storage '%s')", poolid, id)
			}
		}
		delete(cfg.Pools, poolid)
		// PVE's delete_pool_acl drops the ACL node pool -> <poolid>, a
		// single path segment: the ACL of a nested pool ("a/b") stays.
		if n := cfg.ACLNode("/pool", false); n != nil {
			delete(n.Children, poolid)
		}
		return nil
	})
}

// errNoRoot answers a call in a daemon that was given no config root.
func errNoRoot() error {
	return api.Errorf(http.StatusNotImplemented, "not implemented: pools in this daemon")
}

// updateUserCfg changes user.cfg under its lock (PVE's lock_user_config).
// Nothing is written when fn fails; its error is answered as PVE answers
// it: status 500 with "<what>: <error>". An *api.Error other than a 500
// (a die) is a PVE::Exception there, which reads with its status first:
// "403 Permission check failed (...)".
func (d Deps) updateUserCfg(ctx context.Context, what string, fn func(*access.UserCfg) error) error {
	if d.Root == nil {
		return errNoRoot()
	}
	err := access.UpdateUserCfg(ctx, d.Root, fn)
	d.Access.Invalidate()
	if err == nil {
		return nil
	}
	msg := err.Error()
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status != http.StatusInternalServerError {
		msg = fmt.Sprintf("%d %s", ae.Status, ae.Message)
	}
	return die("%s: %s", what, strings.TrimSuffix(msg, "\n"))
}

// die is a plain PVE die: status 500 with the message.
func die(format string, args ...any) error {
	return api.Errorf(http.StatusInternalServerError, format, args...)
}

func startsWithLetter(s string) bool {
	return s != "" && (s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z')
}

// sortedVMIDs returns the guest ids of set in Perl's default (string)
// order, as PVE walks them.
func sortedVMIDs(set map[int]bool) []int {
	ids := make([]int, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int) int { return strings.Compare(strconv.Itoa(a), strconv.Itoa(b)) })
	return ids
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
