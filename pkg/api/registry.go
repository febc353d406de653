package api

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Registry is the table of declared methods and the router over their path
// templates. It is built once at start-up and read-only afterwards.
type Registry struct {
	root *routeNode
	all  []*Method
}

type routeNode struct {
	seg      string // literal segment, or "" for a placeholder
	param    string // placeholder name
	literal  map[string]*routeNode
	variable *routeNode
	// tail: this placeholder takes the rest of the path (Method.TailParam).
	tail    bool
	methods map[string]*Method
	path    string
}

// NewRegistry returns a registry of the given methods. It panics on a
// malformed or duplicate declaration, naming it: declarations are code, and a
// bad one must stop the build's tests, not a running node.
func NewRegistry(methods ...[]Method) *Registry {
	r := &Registry{root: &routeNode{literal: map[string]*routeNode{}, path: "/"}}
	for _, group := range methods {
		for i := range group {
			m := &group[i]
			if err := r.add(m); err != nil {
				panic(err)
			}
		}
	}
	return r
}

func (r *Registry) add(m *Method) error {
	switch m.HTTP {
	case "GET", "POST", "PUT", "DELETE":
	default:
		return fmt.Errorf("api: %s %s: bad HTTP method", m.HTTP, m.Path)
	}
	if !strings.HasPrefix(m.Path, "/") || m.Handle == nil || m.Name == "" {
		return fmt.Errorf("api: %s %s: path, name and handler are required", m.HTTP, m.Path)
	}
	for name, p := range m.Params {
		if err := p.compilePatterns(); err != nil {
			return fmt.Errorf("api: %s %s: parameter %s: %w", m.HTTP, m.Path, name, err)
		}
	}
	n := r.root
	segs := segments(m.Path)
	for i, seg := range segs {
		if name, ok := placeholder(seg); ok {
			if _, declared := m.Params[name]; !declared {
				return fmt.Errorf("api: %s %s: placeholder {%s} is not a declared parameter", m.HTTP, m.Path, name)
			}
			if n.variable == nil {
				n.variable = &routeNode{param: name, literal: map[string]*routeNode{}, path: n.childPath(seg)}
			} else if n.variable.param != name {
				return fmt.Errorf("api: %s %s: placeholder {%s} conflicts with {%s}", m.HTTP, m.Path, name, n.variable.param)
			}
			n = n.variable
			last := i == len(segs)-1
			switch {
			case m.TailParam && last && !n.tail && (n.methods != nil || len(n.literal) > 0 || n.variable != nil):
				return fmt.Errorf("api: %s %s: {%s} is a tail placeholder here but not for the other methods of the path", m.HTTP, m.Path, name)
			case m.TailParam && last:
				n.tail = true
			case n.tail:
				return fmt.Errorf("api: %s %s: {%s} takes the rest of the path for other methods", m.HTTP, m.Path, name)
			}
			continue
		}
		if m.TailParam && i == len(segs)-1 {
			return fmt.Errorf("api: %s %s: TailParam needs a placeholder at the end", m.HTTP, m.Path)
		}
		c, ok := n.literal[seg]
		if !ok {
			c = &routeNode{seg: seg, literal: map[string]*routeNode{}, path: n.childPath(seg)}
			n.literal[seg] = c
		}
		n = c
	}
	if n.methods == nil {
		n.methods = map[string]*Method{}
	}
	if _, dup := n.methods[m.HTTP]; dup {
		return fmt.Errorf("api: %s %s declared twice", m.HTTP, m.Path)
	}
	n.methods[m.HTTP] = m
	r.all = append(r.all, m)
	return nil
}

func (n *routeNode) childPath(seg string) string {
	if n.path == "/" {
		return "/" + seg
	}
	return n.path + "/" + seg
}

// Lookup finds the method for an HTTP method and a path made of decoded
// segments. It returns the method and the values of the path placeholders.
// When the path exists but not the HTTP method, m is nil and found is true.
func (r *Registry) Lookup(httpMethod string, segs []string) (m *Method, pathParams map[string]string, found bool) {
	n := r.root
	for i, seg := range segs {
		if c, ok := n.literal[seg]; ok {
			n = c
			continue
		}
		if n.variable == nil || seg == "" {
			return nil, nil, false
		}
		if pathParams == nil {
			pathParams = map[string]string{}
		}
		if n.variable.tail {
			rest := segs[i:]
			if slices.Contains(rest, "") {
				return nil, nil, false
			}
			pathParams[n.variable.param] = strings.Join(rest, "/")
			n = n.variable
			break
		}
		pathParams[n.variable.param] = seg
		n = n.variable
	}
	if n.methods == nil {
		return nil, nil, false
	}
	return n.methods[httpMethod], pathParams, true
}

// Methods returns every declared method, sorted by path and HTTP method.
func (r *Registry) Methods() []*Method {
	out := append([]*Method(nil), r.all...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].HTTP < out[j].HTTP
	})
	return out
}
