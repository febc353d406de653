package corosync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
)

// Files of the cluster under the config root.
const (
	// ConfFile is PVE's corosync.conf: the cluster name and the member list.
	ConfFile = "corosync.conf"
	// SettingsFile holds pvenode's own cluster settings (PVE does not read
	// it).
	SettingsFile = "pvenode/cluster.cfg"
	// GossipKeyFile holds the key that encrypts the gossip between the
	// nodes (PVE does not read it).
	GossipKeyFile = "priv/pvenode-gossip.key"
)

// File modes as pmxcfs shows them: corosync.conf and cluster.cfg are
// readable by the service group, the key by root only.
const (
	confMode = 0o640
	keyMode  = 0o600
)

// changeLock is the config-root lock that serialises Create, AddNode and
// DeleteNode (PVE's /var/lock/pvecm.lock, here shared by every node of the
// config root). The files are written under their own locks as well.
const changeLock = "pvenode/pvecm"

// Reader reads files of the config root; a missing file is an error for
// which errors.Is(err, fs.ErrNotExist) holds. *pvefs.Root is one.
type Reader interface {
	ReadFile(name string) ([]byte, error)
}

// Root is the config root as *pvefs.Root offers it: reads, locks, and
// read-modify-write of a file under its lock with atomic replacement
// (Update's fn gets nil when the file does not exist).
type Root interface {
	Reader
	Update(ctx context.Context, name string, perm fs.FileMode, fn func(old []byte) ([]byte, error)) error
	Lock(ctx context.Context, name string) (unlock func(), err error)
	MkdirAll(name string, perm fs.FileMode) error
}

// ErrNoCluster is returned when corosync.conf does not exist: the node is
// not part of a cluster.
var ErrNoCluster = errors.New("corosync config does not exist - is this node part of a cluster?")

// ErrClusterExists is returned by Create when corosync.conf exists.
var ErrClusterExists = errors.New("cluster config already exists")

// Read reads and parses corosync.conf; ErrNoCluster if it does not exist.
func Read(r Reader) (*Config, error) {
	data, err := r.ReadFile(ConfFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoCluster
	}
	if err != nil {
		return nil, err
	}
	return Parse(ConfFile, data)
}

// Cluster is the cluster as a node needs it: its name, members and gossip
// settings.
type Cluster struct {
	// Name is totem's cluster_name.
	Name string
	// ConfigVersion is totem's config_version.
	ConfigVersion uint64
	// Nodes are the members in PVE's order (by name).
	Nodes []Node
	// Settings are pvenode's settings of the cluster (cluster.cfg).
	Settings Settings
}

// Node returns the member called name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Load reads the cluster: corosync.conf (ErrNoCluster if it does not exist)
// and cluster.cfg. An error in cluster.cfg is returned together with the
// cluster, whose Settings then hold the good lines and defaults.
func Load(r Reader) (*Cluster, error) {
	conf, err := Read(r)
	if err != nil {
		return nil, err
	}
	nodes, err := conf.Nodes()
	if err != nil {
		return nil, err
	}
	ver, err := conf.ConfigVersion()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: conf.ClusterName(), ConfigVersion: ver, Nodes: nodes}
	c.Settings, err = ReadSettings(r)
	return c, err
}

// IsMember reports whether node is in a cluster: corosync.conf exists and
// lists it.
func IsMember(r Reader, node string) (bool, error) {
	conf, err := Read(r)
	if errors.Is(err, ErrNoCluster) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, ok, err := conf.Node(node)
	return ok, err
}

// Create makes a new cluster of the node o.Node, as "pvecm create" does:
// it refuses if corosync.conf exists, writes a new gossip key, writes
// cluster.cfg with gossipPort (0 keeps the file's port, or the default),
// and last corosync.conf with config_version 1.
func Create(ctx context.Context, root Root, o NewOptions, gossipPort int) (*Config, error) {
	conf, err := New(o)
	if err != nil {
		return nil, err
	}
	if err := conf.BumpVersion(); err != nil {
		return nil, err
	}
	data, err := conf.Marshal()
	if err != nil {
		return nil, err
	}
	if gossipPort != 0 && !validPort(gossipPort) {
		return nil, fmt.Errorf("%w: gossip port %d", ErrInvalid, gossipPort)
	}
	unlock, err := root.Lock(ctx, changeLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := root.ReadFile(ConfFile); err == nil {
		return nil, ErrClusterExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// The key and the settings go first: corosync.conf makes the
	// cluster, so an interrupted create can simply be run again.
	if _, err := NewGossipKey(ctx, root); err != nil {
		return nil, err
	}
	if err := root.MkdirAll(path.Dir(SettingsFile), 0o755); err != nil {
		return nil, err
	}
	err = root.Update(ctx, SettingsFile, confMode, func(old []byte) ([]byte, error) {
		if old != nil && gossipPort == 0 {
			return old, nil // keep the file as it is
		}
		s, err := ParseSettings(SettingsFile, old)
		if err != nil {
			return nil, err
		}
		if gossipPort != 0 {
			s.GossipPort = gossipPort
		}
		return s.Marshal(), nil
	})
	if err != nil {
		return nil, err
	}
	err = root.Update(ctx, ConfFile, confMode, func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, ErrClusterExists
		}
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	return conf, nil
}

// update runs a read-modify-write of corosync.conf under changeLock: fn
// changes the parsed file, and the result is written with config_version
// bumped.
func update(ctx context.Context, root Root, fn func(*Config) error) error {
	unlock, err := root.Lock(ctx, changeLock)
	if err != nil {
		return err
	}
	defer unlock()
	return root.Update(ctx, ConfFile, confMode, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, ErrNoCluster
		}
		conf, err := Parse(ConfFile, old)
		if err != nil {
			return nil, err
		}
		if conf.Main == nil {
			return nil, &ParseError{File: ConfFile, Msg: "file is empty"}
		}
		if err := fn(conf); err != nil {
			return nil, err
		}
		if err := conf.BumpVersion(); err != nil {
			return nil, err
		}
		return conf.Marshal()
	})
}

// AddNode adds a node to corosync.conf (see (*Config).AddNode) and bumps
// config_version, as "pvecm addnode" does, and creates the node's
// directories under nodes/ (PVE's gen_local_dirs) if they are missing.
func AddNode(ctx context.Context, root Root, o AddNodeOptions) (Node, error) {
	var added Node
	err := update(ctx, root, func(c *Config) error {
		n, err := c.AddNode(o)
		added = n
		return err
	})
	if err != nil {
		return Node{}, err
	}
	nd := "nodes/" + added.Name
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{nd + "/qemu-server", 0o755}, {nd + "/lxc", 0o755}, {nd + "/priv", 0o700}} {
		if err := root.MkdirAll(d.name, d.mode); err != nil {
			return added, err
		}
	}
	return added, nil
}

// ErrDeleteSelf is returned by DeleteNode for the node that runs it.
var ErrDeleteSelf = errors.New("Cannot delete myself from cluster!")

// DeleteNode removes a node from corosync.conf (see (*Config).RemoveNode)
// and bumps config_version, as "pvecm delnode" does. self is the name of the
// node that runs it, which cannot remove itself. The node's directory under
// nodes/ stays, as in PVE.
func DeleteNode(ctx context.Context, root Root, nameOrAddr, self string) (Node, error) {
	if nameOrAddr == self {
		return Node{}, ErrDeleteSelf
	}
	var removed Node
	err := update(ctx, root, func(c *Config) error {
		n, err := c.RemoveNode(nameOrAddr)
		if err == nil && n.Name == self {
			return ErrDeleteSelf
		}
		removed = n
		return err
	})
	return removed, err
}
