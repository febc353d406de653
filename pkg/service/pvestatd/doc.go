// Package pvestatd is the status daemon: every cycle it collects this
// node's records (its own figures, each guest's, each storage's), shares
// them with every node of the cluster through pkg/gossip, keeps their
// history (pkg/rrd), and writes the merged view of the cluster
// (pkg/clusterstate) that pveproxy and pvedaemon answer /cluster/resources,
// /cluster/status and /nodes from. See docs/pvestatd.md.
package pvestatd
