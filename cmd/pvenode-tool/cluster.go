package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pvenode/pvenode/pkg/clusterstate"
	"github.com/pvenode/pvenode/pkg/corosync"
	"github.com/pvenode/pvenode/pkg/daemon"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/pvefs"
)

// noViewNote is printed where pvecm shows corosync's live view and
// pvestatd has not written its view of the cluster.
const noViewNote = "unknown (pvestatd has written no view of the cluster; is it running?)"

// liveView reads pvestatd's view of the cluster (the online state the
// gossip sees); nil if there is none.
func liveView(cmd *cobra.Command) *clusterstate.View {
	paths, err := daemon.PathsOf(cmd)
	if err != nil {
		return nil
	}
	v, err := clusterstate.ReadFile(paths.ClusterStateFile())
	if err != nil {
		return nil
	}
	return v
}

// clusterFlags are the flags every cluster subcommand inherits.
type clusterFlags struct {
	node string
}

// clusterCommand returns `pvenode-tool cluster`, the equivalents of
// "pvecm create", "addnode", "delnode", "nodes" and "status" on the config
// root (see docs/cluster.md).
func clusterCommand() *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "create and extend a cluster (pvecm create, addnode, delnode, nodes, status)",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().String("prefix", "", "re-root all paths under `dir` (default $PVENODE_PREFIX)")
	cmd.PersistentFlags().StringVar(&f.node, "node", "", "this node's name (default: the host name up to the first dot)")
	cmd.AddCommand(clusterCreateCommand(f), clusterAddNodeCommand(f), clusterDelNodeCommand(f),
		clusterNodesCommand(f), clusterStatusCommand(f))
	cmd.AddCommand(clusterUpdateCertsCommand(f))
	return cmd
}

// openConfigRoot opens the config root the command's --prefix selects.
// Only create makes a missing config root; for the other commands a
// missing root means no cluster.
func openConfigRoot(cmd *cobra.Command, create bool) (*pvefs.Root, error) {
	paths, err := daemon.PathsOf(cmd)
	if err != nil {
		return nil, err
	}
	if !create {
		if _, err := os.Stat(paths.ConfigRoot); errors.Is(err, fs.ErrNotExist) {
			return nil, noClusterErr(paths.ConfigRoot)
		}
	}
	return pvefs.Open(paths.ConfigRoot)
}

// linkFlags registers --link0 ... --link7 and --ring0_addr.
type linkFlags struct {
	links     [corosync.MaxLink + 1]string
	ring0Addr string
}

func (l *linkFlags) register(cmd *cobra.Command, what string) {
	for i := range l.links {
		cmd.Flags().StringVar(&l.links[i], fmt.Sprintf("link%d", i), "",
			fmt.Sprintf("%s address on corosync link %d: ADDRESS[,priority=N] (an IP address or host name)", what, i))
	}
	cmd.Flags().StringVar(&l.ring0Addr, "ring0_addr", "", "same as --link0 (the name older PVE releases used)")
}

// parse returns the links given.
func (l *linkFlags) parse() (map[int]corosync.Link, error) {
	raw := l.links
	if l.ring0Addr != "" {
		if raw[0] != "" {
			return nil, errors.New("give --link0 or --ring0_addr, not both")
		}
		raw[0] = l.ring0Addr
	}
	links := map[int]corosync.Link{}
	for i, s := range raw {
		if s == "" {
			continue
		}
		lk, err := corosync.ParseLink(s)
		if err != nil {
			return nil, fmt.Errorf("--link%d: %w", i, err)
		}
		links[i] = lk
	}
	return links, nil
}

func clusterCreateCommand(f *clusterFlags) *cobra.Command {
	var (
		lf          linkFlags
		nodeID      int
		votes       int
		coefficient int
		gossipPort  int
	)
	cmd := &cobra.Command{
		Use:   "create <clustername>",
		Short: "make this node a new cluster of one node (pvecm create)",
		Long: "Writes corosync.conf with this node as its only member (node id 1 unless --nodeid, " +
			"link 0 at the address its name resolves to unless --link0), a new gossip key " +
			"(priv/pvenode-gossip.key) and cluster.cfg (pvenode/cluster.cfg). Refuses if corosync.conf exists.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node, err := nodename.Resolve(f.node)
			if err != nil {
				return err
			}
			links, err := lf.parse()
			if err != nil {
				return err
			}
			if len(links) == 0 {
				addrs := nodename.Addrs(cmd.Context(), node)
				if len(addrs) == 0 {
					return fmt.Errorf("cannot determine the address of node '%s': give --link0", node)
				}
				links[0] = corosync.Link{Addr: addrs[0].String()}
			}
			root, err := openConfigRoot(cmd, true)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			confPath := filepath.Join(root.Dir(), corosync.ConfFile)
			fmt.Fprintf(out, "Writing corosync config to %s\n", confPath)
			conf, err := corosync.Create(cmd.Context(), root, corosync.NewOptions{
				ClusterName:      args[0],
				Node:             node,
				NodeID:           nodeID,
				Votes:            votes,
				Links:            links,
				TokenCoefficient: &coefficient,
			}, gossipPort)
			if errors.Is(err, corosync.ErrClusterExists) {
				return fmt.Errorf("cluster config '%s' already exists", confPath)
			}
			if err != nil {
				return err
			}
			n, _, err := conf.Node(node)
			if err != nil {
				return err
			}
			settings, err := corosync.ReadSettings(root)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			fmt.Fprintf(out, "Created cluster '%s': node %s, node id %d, link0 %s\n", conf.ClusterName(), node, n.NodeID, n.Addr())
			fmt.Fprintf(out, "Gossip key: %s\nGossip port: %d (TCP and UDP)\n",
				filepath.Join(root.Dir(), corosync.GossipKeyFile), settings.GossipPort)
			return nil
		},
	}
	lf.register(cmd, "this node's")
	cmd.Flags().IntVar(&nodeID, "nodeid", 0, "this node's node id (default 1)")
	cmd.Flags().IntVar(&votes, "votes", 0, "this node's quorum votes (default 1)")
	cmd.Flags().IntVar(&coefficient, "token-coefficient", corosync.DefaultTokenCoefficient, "totem token_coefficient")
	cmd.Flags().IntVar(&gossipPort, "gossip-port", 0,
		fmt.Sprintf("TCP and UDP port of the gossip (default: cluster.cfg's, else %d)", corosync.DefaultGossipPort))
	return cmd
}

func clusterAddNodeCommand(f *clusterFlags) *cobra.Command {
	var (
		lf     linkFlags
		nodeID int
		votes  int
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "addnode <node>",
		Short: "add a node to the cluster's member list (pvecm addnode); run on a member",
		Long: "Adds the node to corosync.conf and bumps config_version. Refuses a name, node id or " +
			"address another member has, and links other than the cluster's. The new node then starts " +
			"its daemons on the same config root with --node <node>.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := nodename.Resolve(f.node)
			if err != nil {
				return err
			}
			lks, err := lf.parse()
			if err != nil {
				return err
			}
			links := map[int]string{}
			for i, l := range lks {
				links[i] = l.Addr // PVE ignores the priority here
			}
			root, err := openConfigRoot(cmd, false)
			if err != nil {
				return err
			}
			if err := checkMember(root, self); err != nil {
				return err
			}
			o := corosync.AddNodeOptions{Name: args[0], NodeID: nodeID, Links: links, Force: force}
			if cmd.Flags().Changed("votes") {
				o.Votes = &votes
			}
			n, err := corosync.AddNode(cmd.Context(), root, o)
			if err != nil {
				return clusterErr(root, err)
			}
			c, err := corosync.Read(root)
			if err != nil {
				return err
			}
			ver, _ := c.ConfigVersion()
			fmt.Fprintf(cmd.OutOrStdout(), "Added node %s to cluster '%s': node id %d, votes %d, %s (config_version %d)\n",
				n.Name, c.ClusterName(), n.NodeID, n.Votes, linkList(n), ver)
			return nil
		},
	}
	lf.register(cmd, "the node's")
	cmd.Flags().IntVar(&nodeID, "nodeid", 0, "the node's node id (default: the lowest free one)")
	cmd.Flags().IntVar(&votes, "votes", 1, "the node's quorum votes")
	cmd.Flags().BoolVar(&force, "force", false, "re-add an existing node with the same node id and votes, replacing its addresses")
	return cmd
}

func clusterDelNodeCommand(f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delnode <node>",
		Short: "remove a node from the cluster's member list (pvecm delnode)",
		Long: "Removes the node (given by name, or by its ring0 or ring1 address) from corosync.conf " +
			"and bumps config_version. Its directory nodes/<node> stays, as in PVE.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := nodename.Resolve(f.node)
			if err != nil {
				return err
			}
			root, err := openConfigRoot(cmd, false)
			if err != nil {
				return err
			}
			n, err := corosync.DeleteNode(cmd.Context(), root, args[0], self)
			if err != nil {
				return clusterErr(root, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed node %s (node id %d) from the cluster\n", n.Name, n.NodeID)
			return nil
		},
	}
}

func clusterNodesCommand(f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "list the cluster's members from corosync.conf (pvecm nodes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, _, c, err := loadCluster(cmd, f)
			if err != nil {
				return err
			}
			writeMembers(cmd.OutOrStdout(), c, self, liveView(cmd))
			return nil
		},
	}
}

func clusterStatusCommand(f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "show the cluster's configuration and members (pvecm status)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, root, c, err := loadCluster(cmd, f)
			if err != nil {
				return err
			}
			conf, err := corosync.Read(root)
			if err != nil {
				return clusterErr(root, err)
			}
			writeStatus(cmd.OutOrStdout(), root, conf, c, self, liveView(cmd))
			return nil
		},
	}
}

// loadCluster reads the cluster for the read-only commands: this node's
// name, the config root and the cluster (a problem in cluster.cfg is a
// warning, its good lines apply).
func loadCluster(cmd *cobra.Command, f *clusterFlags) (string, *pvefs.Root, *corosync.Cluster, error) {
	self, _ := nodename.Resolve(f.node)
	root, err := openConfigRoot(cmd, false)
	if err != nil {
		return "", nil, nil, err
	}
	c, err := corosync.Load(root)
	if c == nil {
		return "", nil, nil, clusterErr(root, err)
	}
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
	}
	return self, root, c, nil
}

// checkMember refuses to change the cluster from a node outside it, as
// pvecm addnode only works on a member.
func checkMember(root *pvefs.Root, self string) error {
	ok, err := corosync.IsMember(root, self)
	if err != nil {
		return clusterErr(root, err)
	}
	if !ok {
		if _, err := corosync.Read(root); err != nil {
			return clusterErr(root, err)
		}
		return fmt.Errorf("this node (%s) is not a member of the cluster: run the command on a member, or give its name with --node", self)
	}
	return nil
}

// clusterErr words ErrNoCluster as pvecm does.
func clusterErr(root *pvefs.Root, err error) error {
	if errors.Is(err, corosync.ErrNoCluster) {
		return noClusterErr(root.Dir())
	}
	return err
}

// noClusterErr is pvecm's error for a missing corosync.conf under dir.
func noClusterErr(dir string) error {
	return fmt.Errorf("Corosync config '%s' does not exist - is this node part of a cluster?",
		filepath.Join(dir, corosync.ConfFile))
}

// linkList renders a node's links as "link0 ADDR, link1 ADDR".
func linkList(n corosync.Node) string {
	var parts []string
	for l := 0; l <= corosync.MaxLink; l++ {
		if a, ok := n.Links[l]; ok {
			parts = append(parts, fmt.Sprintf("link%d %s", l, a))
		}
	}
	return strings.Join(parts, ", ")
}

// writeMembers prints the member list in the layout of
// corosync-quorumtool -l (which pvecm nodes runs), plus each node's link 0
// address.
// The online state is pvestatd's view (v), or unknown without one.
func writeMembers(w io.Writer, c *corosync.Cluster, self string, v *clusterstate.View) {
	fmt.Fprintf(w, "\nMembership information\n----------------------\n")
	fmt.Fprintf(w, "%10s %10s %-24s %-16s %s\n", "Nodeid", "Votes", "Name", "Link0", "State")
	for _, n := range c.Nodes {
		name := n.Name
		if name == self {
			name += " (local)"
		}
		state := "unknown"
		if m := memberOf(v, n.Name); m != nil {
			state = "offline"
			if m.Online {
				state = "online"
			}
		}
		fmt.Fprintf(w, "%10d %10d %-24s %-16s %s\n", n.NodeID, n.Votes, name, n.Addr(), state)
	}
	if v == nil {
		fmt.Fprintf(w, "\nOnline state: %s\n", noViewNote)
	}
}

// memberOf returns node's entry in v, or nil.
func memberOf(v *clusterstate.View, node string) *clusterstate.Member {
	if v == nil {
		return nil
	}
	return v.Member(node)
}

// writeStatus prints what pvecm status prints, as far as the files tell.
func writeStatus(w io.Writer, root *pvefs.Root, conf *corosync.Config, c *corosync.Cluster, self string, v *clusterstate.View) {
	info := func(label string, v any) { fmt.Fprintf(w, "%-17s %v\n", label+":", v) }
	totemValue := func(key, def string) string {
		if t := conf.Totem(); t != nil {
			if v, ok := t.Get(key); ok {
				return v
			}
		}
		return def
	}
	fmt.Fprintf(w, "Cluster information\n-------------------\n")
	info("Name", totemValue("cluster_name", "UNKNOWN"))
	info("Config Version", totemValue("config_version", "-1"))
	info("Transport", totemValue("transport", "knet"))
	info("Secure auth", totemValue("secauth", "off"))

	fmt.Fprintf(w, "\nQuorum information\n------------------\n")
	provider := ""
	if q := conf.Main.Section("quorum"); q != nil {
		provider, _ = q.Get("provider")
	}
	info("Quorum provider", provider)
	info("Nodes", len(c.Nodes))
	if n, ok := c.Node(self); ok {
		info("Node name", self)
		info("Node ID", fmt.Sprintf("0x%08x", n.NodeID))
	} else {
		info("Node name", self+" (not a member)")
	}
	expected, total := 0, 0
	for _, n := range c.Nodes {
		expected += n.Votes
		if m := memberOf(v, n.Name); m != nil && m.Online {
			total += n.Votes
		}
	}
	if v == nil {
		info("Quorate", noViewNote)
	} else if total >= expected/2+1 {
		info("Quorate", "Yes")
	} else {
		info("Quorate", "No")
	}
	fmt.Fprintf(w, "\nVotequorum information\n----------------------\n")
	info("Expected votes", expected)
	info("Quorum", expected/2+1)
	if v == nil {
		info("Total votes", noViewNote)
	} else {
		info("Total votes", total)
	}

	writeMembers(w, c, self, v)

	fmt.Fprintf(w, "\nGossip (pvenode)\n----------------\n")
	info("Port", fmt.Sprintf("%d (TCP and UDP, at each node's link 0 address)", c.Settings.GossipPort))
	key := filepath.Join(root.Dir(), corosync.GossipKeyFile)
	if _, err := corosync.ReadGossipKeys(root); err != nil {
		info("Key", fmt.Sprintf("%s: %v", key, err))
	} else {
		info("Key", key)
	}
}
