package corosync

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by the errors New, AddNode and ParseLink return for
// unusable arguments.
var ErrInvalid = errors.New("invalid argument")

// DefaultTokenCoefficient is what "pvecm create" writes as
// token_coefficient when none is given.
const DefaultTokenCoefficient = 125

// maxClusterName is the longest cluster name PVE accepts.
const maxClusterName = 15

var (
	// reNodeName is PVE's pve-node format (pve_verify_node_name).
	reNodeName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	// reDNSName is PVE's dns-name format (pve_verify_dns_name).
	reDNSName = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
)

// ValidNodeName reports whether s is a node name in PVE's pve-node format.
func ValidNodeName(s string) bool { return reNodeName.MatchString(s) }

// ValidAddress reports whether s is a link address in PVE's address format:
// an IP address (without zone) or a DNS name.
func ValidAddress(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	return reDNSName.MatchString(s)
}

// Link is a corosync link of the node that runs "pvecm create" or of a node
// being added.
type Link struct {
	// Addr is the address: an IP address or a host name.
	Addr string
	// Priority is knet's link priority (0-255); used by New only, as PVE
	// ignores it when adding a node.
	Priority int
}

// ParseLink parses PVE's corosync-link property string, as given to
// "pvecm create --link0": "ADDRESS" or "address=ADDRESS", optionally
// followed by ",priority=N".
func ParseLink(s string) (Link, error) {
	var l Link
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			k, v = "address", part
		}
		if seen[k] {
			return Link{}, fmt.Errorf("%w: link %q: duplicate %s", ErrInvalid, s, k)
		}
		seen[k] = true
		switch k {
		case "address":
			if !ValidAddress(v) {
				return Link{}, fmt.Errorf("%w: link %q: value does not look like a valid address: %s", ErrInvalid, s, v)
			}
			l.Addr = v
		case "priority":
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 || p > 255 {
				return Link{}, fmt.Errorf("%w: link %q: priority must be an integer from 0 to 255", ErrInvalid, s)
			}
			l.Priority = p
		default:
			return Link{}, fmt.Errorf("%w: link %q: unknown property %q", ErrInvalid, s, k)
		}
	}
	if l.Addr == "" {
		return Link{}, fmt.Errorf("%w: link %q: no address", ErrInvalid, s)
	}
	return l, nil
}

// NewOptions describe a new cluster (the parameters of "pvecm create").
type NewOptions struct {
	// ClusterName is the cluster's name: a node name of at most 15
	// characters.
	ClusterName string
	// Node is the name of the node that creates the cluster.
	Node string
	// NodeID is its node id; 0 means 1.
	NodeID int
	// Votes are its quorum votes; 0 means 1.
	Votes int
	// Links are its links by number (0 to MaxLink); at least one.
	Links map[int]Link
	// TokenCoefficient is totem's token_coefficient; nil means
	// DefaultTokenCoefficient, as "pvecm create" defaults it.
	TokenCoefficient *int
}

// New returns the configuration of a new cluster of one node, as PVE's
// create_conf builds it: config_version 0, which the first write bumps to 1.
func New(o NewOptions) (*Config, error) {
	if !ValidNodeName(o.ClusterName) || len(o.ClusterName) > maxClusterName {
		return nil, fmt.Errorf("%w: cluster name %q: must be a node name of at most %d characters", ErrInvalid, o.ClusterName, maxClusterName)
	}
	if !ValidNodeName(o.Node) {
		return nil, fmt.Errorf("%w: node name %q: value does not look like a valid node name", ErrInvalid, o.Node)
	}
	if o.NodeID < 0 || o.Votes < 0 {
		return nil, fmt.Errorf("%w: node id and votes must be at least 1", ErrInvalid)
	}
	if len(o.Links) == 0 {
		return nil, fmt.Errorf("%w: no link address given", ErrInvalid)
	}
	nodeID, votes := max(o.NodeID, 1), max(o.Votes, 1)
	coeff := DefaultTokenCoefficient
	if o.TokenCoefficient != nil {
		coeff = *o.TokenCoefficient
	}
	if coeff < 0 {
		return nil, fmt.Errorf("%w: token coefficient must not be negative", ErrInvalid)
	}

	c := &Config{Name: ConfFile, Main: &Section{}}
	set := func(s *Section, kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			if err := s.Set(kv[i], kv[i+1]); err != nil {
				panic(err) // the keys and values above are all valid
			}
		}
	}
	totem, _ := c.Main.EnsureSection("totem")
	set(totem,
		"version", "2",
		"secauth", "on",
		"cluster_name", o.ClusterName,
		"config_version", "0",
		"ip_version", "ipv4-6",
		"link_mode", "passive",
		"token_coefficient", strconv.Itoa(coeff))
	node := &Section{}
	set(node, "name", o.Node, "nodeid", strconv.Itoa(nodeID), "quorum_votes", strconv.Itoa(votes))
	var ifaces []*Section
	for _, n := range sortedLinks(o.Links) {
		l := o.Links[n]
		if n < 0 || n > MaxLink {
			return nil, fmt.Errorf("%w: link number %d: links are 0 to %d", ErrInvalid, n, MaxLink)
		}
		if !ValidAddress(l.Addr) {
			return nil, fmt.Errorf("%w: link%d: value does not look like a valid address: %s", ErrInvalid, n, l.Addr)
		}
		if l.Priority < 0 || l.Priority > 255 {
			return nil, fmt.Errorf("%w: link%d: priority must be from 0 to 255", ErrInvalid, n)
		}
		iface := &Section{}
		set(iface, "linknumber", strconv.Itoa(n))
		if l.Priority != 0 {
			set(iface, "knet_link_priority", strconv.Itoa(l.Priority))
		}
		ifaces = append(ifaces, iface)
		set(node, fmt.Sprintf("ring%d_addr", n), l.Addr)
	}
	_ = totem.SetList("interface", ifaces)
	nodelist, _ := c.Main.EnsureSection("nodelist")
	_ = nodelist.SetList("node", []*Section{node})
	quorum, _ := c.Main.EnsureSection("quorum")
	set(quorum, "provider", "corosync_votequorum")
	logging, _ := c.Main.EnsureSection("logging")
	set(logging, "to_syslog", "yes", "debug", "off")
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return c, nil
}

// sortedLinks returns the link numbers of links in order.
func sortedLinks[V any](links map[int]V) []int {
	nums := make([]int, 0, len(links))
	for n := range links {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums
}

// AddNodeOptions describe a node to add (the parameters of "pvecm
// addnode").
type AddNodeOptions struct {
	// Name is the new node's name.
	Name string
	// NodeID is its node id; 0 picks the lowest free one.
	NodeID int
	// Votes are its quorum votes; nil means 1 (or the node's current
	// votes when Force re-adds it).
	Votes *int
	// Links are its addresses by link number; they must be the links the
	// cluster's nodes have.
	Links map[int]string
	// Force re-adds a node that exists with the same node id and votes
	// (PVE's --force), replacing its addresses.
	Force bool
}

// AddNode adds a node to the nodelist as PVE's addnode API does, plus a
// check PVE lacks: an explicit node id must be free. It refuses a
// configuration with Verify errors, an address another node uses, links
// that differ from the cluster's, and an existing node (unless Force and
// the same id and votes). It does not bump config_version.
func (c *Config) AddNode(o AddNodeOptions) (Node, error) {
	if !ValidNodeName(o.Name) {
		return Node{}, fmt.Errorf("%w: node name %q: value does not look like a valid node name", ErrInvalid, o.Name)
	}
	if o.NodeID < 0 || o.Votes != nil && *o.Votes < 0 {
		return Node{}, fmt.Errorf("%w: node id must be at least 1 and votes at least 0", ErrInvalid)
	}
	if len(o.Links) == 0 {
		return Node{}, fmt.Errorf("%w: no link address given for node '%s'", ErrInvalid, o.Name)
	}
	for n, a := range o.Links {
		if n < 0 || n > MaxLink {
			return Node{}, fmt.Errorf("%w: link number %d: links are 0 to %d", ErrInvalid, n, MaxLink)
		}
		if !ValidAddress(a) {
			return Node{}, fmt.Errorf("%w: link%d: value does not look like a valid address: %s", ErrInvalid, n, a)
		}
	}
	if errs, _ := c.Verify(); len(errs) > 0 {
		return Node{}, fmt.Errorf("invalid corosync.conf: %s", strings.Join(errs, "; "))
	}
	nodes, err := c.Nodes()
	if err != nil {
		return Node{}, err
	}

	// Never reuse an address: that can break the whole cluster.
	for _, n := range sortedLinks(o.Links) {
		addr := o.Links[n]
		for _, other := range nodes {
			if other.Name == o.Name {
				continue
			}
			for _, l := range sortedLinks(other.Links) {
				if l <= MaxLink && other.Links[l] == addr {
					return Node{}, fmt.Errorf("corosync: address '%s' already used on link ring%d_addr by node '%s'", addr, l, other.Name)
				}
			}
		}
	}

	// The new node needs exactly the cluster's links.
	clusterLinks := map[int]bool{}
	if len(nodes) > 0 {
		for l := range nodes[0].Links {
			clusterLinks[l] = true
		}
	} else {
		for l := range c.Interfaces() {
			clusterLinks[l] = true
		}
	}
	for l := 0; l <= MaxLink; l++ {
		_, given := o.Links[l]
		switch {
		case clusterLinks[l] && !given:
			return Node{}, fmt.Errorf("corosync: link %d exists in cluster config but wasn't specified for new node", l)
		case !clusterLinks[l] && given:
			return Node{}, fmt.Errorf("corosync: link %d specified for new node doesn't exist in cluster config", l)
		}
	}

	nodeID := o.NodeID
	votes := 1
	if o.Votes != nil {
		votes = *o.Votes
	}
	existing := slices.IndexFunc(nodes, func(n Node) bool { return n.Name == o.Name })
	if existing >= 0 {
		cur := nodes[existing]
		if nodeID == 0 {
			nodeID = cur.NodeID
		}
		if o.Votes == nil {
			votes = cur.Votes
		}
		if !o.Force || cur.NodeID != nodeID || cur.Votes != votes {
			return Node{}, fmt.Errorf("can't add existing node '%s'", o.Name)
		}
	}
	if nodeID == 0 {
		nodeID = 1
		for slices.ContainsFunc(nodes, func(n Node) bool { return n.NodeID == nodeID }) {
			nodeID++
		}
	}
	for _, other := range nodes {
		if other.Name != o.Name && other.NodeID == nodeID {
			return Node{}, fmt.Errorf("node id %d is already used by node '%s'", nodeID, other.Name)
		}
	}

	sec := &Section{}
	_ = sec.Set("name", o.Name)
	_ = sec.Set("nodeid", strconv.Itoa(nodeID))
	_ = sec.Set("quorum_votes", strconv.Itoa(votes))
	for _, l := range sortedLinks(o.Links) {
		_ = sec.Set(fmt.Sprintf("ring%d_addr", l), o.Links[l])
	}
	nodelist := c.section("nodelist") // Verify made sure it exists
	list := slices.DeleteFunc(slices.Clone(nodelist.List("node")), func(s *Section) bool {
		name, _ := s.Get("name")
		return name == o.Name
	})
	if err := nodelist.SetList("node", append(list, sec)); err != nil {
		return Node{}, err
	}
	if err := c.normalize(); err != nil {
		return Node{}, err
	}
	return c.node(sec)
}

// RemoveNode removes the node whose name, ring0_addr or ring1_addr is
// nameOrAddr, as PVE's delnode API does (a name match wins over an address
// match). It does not bump config_version.
func (c *Config) RemoveNode(nameOrAddr string) (Node, error) {
	nl := c.section("nodelist")
	var list []*Section
	if nl != nil {
		list = nl.List("node")
	}
	match := func(keys ...string) int {
		return slices.IndexFunc(list, func(s *Section) bool {
			for _, k := range keys {
				if v, ok := s.Get(k); ok && v == nameOrAddr {
					return true
				}
			}
			return false
		})
	}
	i := match("name")
	if i < 0 {
		i = match("ring0_addr", "ring1_addr")
	}
	if i < 0 {
		return Node{}, fmt.Errorf("Node/IP: %s is not a known host of the cluster", nameOrAddr)
	}
	n, err := c.node(list[i])
	if err != nil {
		return Node{}, err
	}
	if err := nl.SetList("node", slices.Delete(slices.Clone(list), i, i+1)); err != nil {
		return Node{}, err
	}
	return n, nil
}
