package corosync

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
)

// MaxLink is the highest link number (PVE's MAX_LINK_INDEX): links 0 to 7,
// written as ring0_addr ... ring7_addr.
const MaxLink = 7

// Node is a node of the nodelist.
type Node struct {
	// Name is the node name (the name key).
	Name string
	// NodeID is corosync's node id (nodeid); 0 if the file has none.
	NodeID int
	// Votes is quorum_votes; 1, corosync's default, if the file has none.
	Votes int
	// Links maps link numbers to the node's addresses on them (ringN_addr,
	// or linkN_addr, which PVE accepts too): IP addresses or host names.
	Links map[int]string
}

// Addr returns the node's link 0 address (ring0_addr), "" if it has none.
func (n Node) Addr() string { return n.Links[0] }

// reLinkKey is PVE's $link_addr_re.
var reLinkKey = regexp.MustCompile(`^(ring|link)(\d+)_addr$`)

// linkKey returns the link number of a ringN_addr or linkN_addr key.
func linkKey(key string) (int, bool) {
	m := reLinkKey.FindStringSubmatch(key)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return 0, false
	}
	return n, true
}

// section returns the top-level section name, or nil.
func (c *Config) section(name string) *Section {
	if c == nil || c.Main == nil {
		return nil
	}
	return c.Main.Section(name)
}

// Totem returns the totem section, or nil.
func (c *Config) Totem() *Section { return c.section("totem") }

// ClusterName returns totem's cluster_name, "" if there is none.
func (c *Config) ClusterName() string {
	if t := c.Totem(); t != nil {
		v, _ := t.Get("cluster_name")
		return v
	}
	return ""
}

// ConfigVersion returns totem's config_version.
func (c *Config) ConfigVersion() (uint64, error) {
	t := c.Totem()
	if t == nil {
		return 0, c.errAt(0, "no totem section")
	}
	v, ok := t.Get("config_version")
	if !ok {
		return 0, c.errAt(0, "totem has no config_version")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, c.errAt(t.KeyLine("config_version"), "config_version %q is not a number", v)
	}
	return n, nil
}

// BumpVersion increments config_version, as PVE does before every write of
// the file (atomic_write_conf); corosync takes the file with the highest
// version.
func (c *Config) BumpVersion() error {
	n, err := c.ConfigVersion()
	if err != nil {
		return fmt.Errorf("invalid corosync config: unable to read config version: %w", err)
	}
	return c.Totem().Set("config_version", strconv.FormatUint(n+1, 10))
}

// nodeSections returns the sections of the nodelist's nodes.
func (c *Config) nodeSections() []*Section {
	if nl := c.section("nodelist"); nl != nil {
		return nl.List("node")
	}
	return nil
}

// Nodes returns the nodes of the nodelist in PVE's order (by name).
func (c *Config) Nodes() ([]Node, error) {
	secs := c.nodeSections()
	nodes := make([]Node, 0, len(secs))
	for _, s := range secs {
		n, err := c.node(s)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Node returns the node called name.
func (c *Config) Node(name string) (Node, bool, error) {
	nodes, err := c.Nodes()
	if err != nil {
		return Node{}, false, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n, true, nil
		}
	}
	return Node{}, false, nil
}

// node reads a node section.
func (c *Config) node(s *Section) (Node, error) {
	n := Node{Votes: 1, Links: map[int]string{}}
	n.Name, _ = s.Get("name")
	who := n.Name
	if who == "" {
		who, _ = s.Get("ring0_addr")
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"nodeid", &n.NodeID}, {"quorum_votes", &n.Votes}} {
		v, ok := s.Get(f.key)
		if !ok {
			continue
		}
		x, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Node{}, c.errAt(s.KeyLine(f.key), "node '%s': %s %q is not a number", who, f.key, v)
		}
		*f.dst = int(x)
	}
	for k, v := range s.values {
		if l, ok := linkKey(k); ok {
			n.Links[l] = v.v
		}
	}
	return n, nil
}

// Interfaces returns totem's interface sections by link number (linknumber,
// or ringnumber).
func (c *Config) Interfaces() map[int]*Section {
	out := map[int]*Section{}
	if t := c.Totem(); t != nil {
		for _, s := range t.List("interface") {
			v, ok := s.Get("linknumber")
			if !ok {
				v, ok = s.Get("ringnumber")
			}
			if n, err := strconv.Atoi(v); ok && err == nil {
				out[n] = s
			}
		}
	}
	return out
}

// Verify checks the configuration as PVE's verify_conf does (without its
// name resolution of link addresses): errors make PVE refuse to add a node,
// warnings are advice.
func (c *Config) Verify() (errs, warns []string) {
	if c.section("nodelist") == nil {
		return []string{"no nodes found"}, nil
	}
	t := c.Totem()
	if t == nil {
		return []string{"no totem found"}, nil
	}
	secauth, hasSecauth := t.Get("secauth")
	cipher, hasCipher := t.Get("crypto_cipher")
	if (!hasSecauth || secauth != "on") && (!hasCipher || cipher == "none") {
		warns = append(warns, "warning: authentication/encryption is not explicitly enabled"+
			" (secauth / crypto_cipher / crypto_hash)")
	}
	nodes, err := c.Nodes()
	if err != nil {
		return []string{err.Error()}, warns
	}
	ifaces := c.Interfaces()
	if len(ifaces) > 0 {
		// Every link needs an interface and the other way round.
		for l := 0; l <= MaxLink; l++ {
			_, haveIface := ifaces[l]
			for _, n := range nodes {
				_, haveLink := n.Links[l]
				switch {
				case haveLink && !haveIface:
					errs = append(errs, fmt.Sprintf("node '%s' has '%s', but there is no interface number %d",
						n.Name, c.linkKeyName(n, l), l))
				case !haveLink && haveIface:
					errs = append(errs, fmt.Sprintf("node '%s' is missing address for interface number %d", n.Name, l))
				}
			}
		}
		return errs, warns
	}
	// Without interfaces every node needs the links some node has.
	for l := 0; l <= MaxLink; l++ {
		some := slices.ContainsFunc(nodes, func(n Node) bool { _, ok := n.Links[l]; return ok })
		if !some {
			continue
		}
		for _, n := range nodes {
			if _, ok := n.Links[l]; !ok {
				errs = append(errs, fmt.Sprintf("node '%s' is missing link %d, which is configured on other nodes", n.Name, l))
			}
		}
	}
	return errs, warns
}

// linkKeyName returns the key holding node n's address on link l as the
// file spells it (ringN_addr or linkN_addr).
func (c *Config) linkKeyName(n Node, l int) string {
	for _, s := range c.nodeSections() {
		if name, _ := s.Get("name"); name != n.Name {
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(s.values)) {
			if x, ok := linkKey(k); ok && x == l {
				return k
			}
		}
	}
	return fmt.Sprintf("ring%d_addr", l)
}
