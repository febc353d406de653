package api

import (
	"encoding/json"
	"io"
	"sort"
)

// DumpNode is one node of the schema tree, in the shape of PVE's API viewer
// data (apidata.js): path, text (last segment), leaf, info (per HTTP method)
// and children.
type DumpNode struct {
	Path     string                    `json:"path"`
	Text     string                    `json:"text"`
	Leaf     int                       `json:"leaf"`
	Info     map[string]map[string]any `json:"info,omitempty"`
	Children []*DumpNode               `json:"children,omitempty"`
}

// Dump returns the schema tree of every declared method.
func (r *Registry) Dump() []*DumpNode {
	return dumpChildren(r.root)
}

// WriteDump writes the schema tree as indented JSON.
func (r *Registry) WriteDump(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r.Dump())
}

func dumpChildren(n *routeNode) []*DumpNode {
	var kids []*routeNode
	for _, c := range n.literal {
		kids = append(kids, c)
	}
	if n.variable != nil {
		kids = append(kids, n.variable)
	}
	sort.Slice(kids, func(i, j int) bool { return kids[i].path < kids[j].path })
	var out []*DumpNode
	for _, c := range kids {
		if d := dumpNode(c); d != nil {
			out = append(out, d)
		}
	}
	return out
}

func dumpNode(n *routeNode) *DumpNode {
	children := dumpChildren(n)
	if len(n.methods) == 0 && len(children) == 0 {
		return nil
	}
	text := n.seg
	if n.param != "" {
		text = "{" + n.param + "}"
	}
	d := &DumpNode{Path: n.path, Text: text, Children: children}
	if len(children) == 0 {
		d.Leaf = 1
	}
	if len(n.methods) > 0 {
		d.Info = map[string]map[string]any{}
		for verb, m := range n.methods {
			d.Info[verb] = m.schemaMap()
		}
	}
	return d
}

// schemaMap renders m as PVE's API viewer does.
func (m *Method) schemaMap() map[string]any {
	params := &Schema{Type: "", Properties: m.Params}
	pm := params.toMap()
	delete(pm, "type")
	if len(m.Params) == 0 {
		delete(pm, "properties")
	}
	pm["additionalProperties"] = b01(m.AdditionalParams)
	out := map[string]any{
		"method":     m.HTTP,
		"name":       m.Name,
		"parameters": pm,
		"allowtoken": b01(!m.NoToken),
	}
	if m.Description != "" {
		out["description"] = m.Description
	}
	if m.Protected {
		out["protected"] = 1
	}
	if m.DownloadAllowed {
		out["download_allowed"] = 1
	}
	if m.ProxyTo != "" {
		out["proxyto"] = m.ProxyTo
	}
	perm := map[string]any{}
	if m.Permissions.Description != "" {
		perm["description"] = m.Permissions.Description
	}
	if m.Permissions.User != "" {
		perm["user"] = m.Permissions.User
	}
	if m.Permissions.Check != nil {
		perm["check"] = m.Permissions.Check
	}
	if len(perm) > 0 {
		out["permissions"] = perm
	}
	if m.Returns != nil {
		out["returns"] = m.Returns.toMap()
	}
	return out
}
