// Package gossip shares each node's status among the nodes of a cluster over
// hashicorp/memberlist: membership and failure detection (SWIM), and one
// versioned, opaque state blob per node, spread by gossip broadcasts and
// repaired by push/pull anti-entropy. Packets are encrypted with the cluster
// key (AES-256-GCM); streams run over mutual TLS with certificates from the
// cluster CA. It knows nothing of what the states mean: pvestatd fills them.
//
// Small states travel whole in gossip packets; a state too large for a
// packet is announced, and each node fetches it over a TLS stream from a
// node that announced holding it, so the load spreads like the gossip
// itself. Push/pull exchanges a digest of (node, version) and each side
// sends the states the other lacks. A dead node's last state is kept and
// marked; a node that comes back rejoins through its peers, which are
// retried periodically.
package gossip
