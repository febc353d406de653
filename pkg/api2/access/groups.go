package access

import (
	"context"
	"sort"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
)

func (d Deps) groupMethods() []api.Method {
	return []api.Method{
		{
			Name: "index", Path: "/access/groups", HTTP: "GET",
			Description: "Group index.",
			Permissions: api.Permissions{
				Description: "Lists the groups on whose /access/groups/<group> path the caller has User.Modify, Sys.Audit or Group.Allocate.",
				User:        "all",
			},
			Params: map[string]*api.Schema{},
			Returns: api.Arr(api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"groupid": api.Str().Fmt("pve-groupid"),
				"users":   api.Str().Fmt("pve-userid-list").Opt(),
			})).WithLinks(api.Link{Href: "{groupid}", Rel: "child"}),
			Handle: d.groupIndex,
		},
		{
			Name: "create_group", Path: "/access/groups", HTTP: "POST",
			Description: "Create new group.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/groups", []any{"Group.Allocate"}}},
			Params: map[string]*api.Schema{
				"comment": api.Str().Opt().TT("<string>"),
				"groupid": api.Str().Fmt("pve-groupid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.createGroup,
		},
		{
			Name: "delete_group", Path: "/access/groups/{groupid}", HTTP: "DELETE",
			Description: "Delete group.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/groups", []any{"Group.Allocate"}}},
			Params: map[string]*api.Schema{
				"groupid": api.Str().Fmt("pve-groupid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.deleteGroup,
		},
		{
			Name: "read_group", Path: "/access/groups/{groupid}", HTTP: "GET",
			Description: "Get group configuration.",
			Permissions: api.Permissions{Check: []any{"perm", "/access/groups", []any{"Sys.Audit", "Group.Allocate"}, "any", 1}},
			Params: map[string]*api.Schema{
				"groupid": api.Str().Fmt("pve-groupid").TT("<string>"),
			},
			Returns: api.Obj(map[string]*api.Schema{
				"comment": api.Str().Opt(),
				"members": api.Arr(api.Str().Fmt("pve-userid").MaxLen(64)),
			}).Additional(false),
			Handle: d.readGroup,
		},
		{
			Name: "update_group", Path: "/access/groups/{groupid}", HTTP: "PUT",
			Description: "Update group data.",
			Protected:   true,
			Permissions: api.Permissions{Check: []any{"perm", "/access/groups", []any{"Group.Allocate"}}},
			Params: map[string]*api.Schema{
				"comment": api.Str().Opt().TT("<string>"),
				"groupid": api.Str().Fmt("pve-groupid").TT("<string>"),
			},
			Returns: api.Null(),
			Handle:  d.updateGroup,
		},
	}
}

// groupEntry is an item of GET /access/groups.
type groupEntry struct {
	GroupID string  `json:"groupid"`
	Comment *string `json:"comment,omitempty"`
	Users   string  `json:"users"`
}

// groupPrivs are the privileges that make a group visible in the index.
var groupPrivs = []string{"User.Modify", "Sys.Audit", "Group.Allocate"}

func (d Deps) groupIndex(ctx context.Context, r *api.Request) (any, error) {
	cfg := d.Access.UserCfg()
	caller := r.Identity.AuthID
	res := []groupEntry{}
	for _, name := range sortedNames(cfg.Groups) {
		if !d.Access.CheckPrivs(caller, "/access/groups/"+name, groupPrivs, true) {
			continue
		}
		g := cfg.Groups[name]
		e := groupEntry{GroupID: name, Users: strings.Join(sortedNames(g.Members), ",")}
		if g.Comment != "" {
			e.Comment = &g.Comment
		}
		res = append(res, e)
	}
	return res, nil
}

func (d Deps) createGroup(ctx context.Context, r *api.Request) (any, error) {
	name := r.Params.Get("groupid")
	return nil, d.refresh(d.updateUserCfg(ctx, "create group failed", func(cfg *access.UserCfg) error {
		if cfg.Groups[name] != nil {
			return die("group '%s' already exists", name)
		}
		cfg.Groups[name] = &access.Group{Members: map[string]bool{}, Comment: r.Params.Get("comment")}
		return nil
	}))
}

func (d Deps) updateGroup(ctx context.Context, r *api.Request) (any, error) {
	name := r.Params.Get("groupid")
	return nil, d.refresh(d.updateUserCfg(ctx, "update group failed", func(cfg *access.UserCfg) error {
		g := cfg.Groups[name]
		if g == nil {
			return die("group '%s' does not exist", name)
		}
		if c, ok := r.Params.String("comment"); ok {
			g.Comment = c
		}
		return nil
	}))
}

// groupAnswer is GET /access/groups/{groupid}.
type groupAnswer struct {
	Comment *string  `json:"comment,omitempty"`
	Members []string `json:"members"`
}

func (d Deps) readGroup(ctx context.Context, r *api.Request) (any, error) {
	name := r.Params.Get("groupid")
	g := d.Access.UserCfg().Groups[name]
	if g == nil {
		return nil, die("group '%s' does not exist", name)
	}
	res := groupAnswer{Members: sortedNames(g.Members)}
	if g.Comment != "" {
		res.Comment = &g.Comment
	}
	return res, nil
}

func (d Deps) deleteGroup(ctx context.Context, r *api.Request) (any, error) {
	name := r.Params.Get("groupid")
	return nil, d.refresh(d.updateUserCfg(ctx, "delete group failed", func(cfg *access.UserCfg) error {
		if cfg.Groups[name] == nil {
			return die("group '%s' does not exist", name)
		}
		delete(cfg.Groups, name)
		// PVE's delete_group_acl: the group's entries go from every path
		cfg.WalkACL(func(_ string, n *access.ACLNode) { delete(n.Groups, name) })
		return nil
	}))
}

// sortedNames returns the keys of m, sorted.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
