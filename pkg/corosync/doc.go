// Package corosync reads and writes the cluster membership kept in the
// config root: PVE's /etc/pve/corosync.conf, and pvenode's own cluster
// files beside it (the gossip settings pvenode/cluster.cfg and the gossip
// key priv/pvenode-gossip.key).
//
// # corosync.conf
//
// Parse and (*Config).Marshal behave as PVE's PVE::Corosync::parse_conf and
// write_conf (pve-cluster src/PVE/Corosync.pm), so that a file written here
// is byte for byte the file PVE's tools would write for the same content,
// and PVE's tools read every file written here:
//
//   - The file is a tree of sections ("name {" ... "}") holding "key: value"
//     pairs. Tokens are separated by ASCII white space (space, tab, newline,
//     vertical tab, form feed, carriage return); a '#' starts a comment up to
//     the end of its line, also in the middle of a value ("a: b#c" is "a: b").
//     A key and its value are single tokens: "key: two words" is an error,
//     as in PVE.
//   - "node" and "interface" sections are lists; any other section name may
//     appear once per section ("section 'x' already exists and not marked
//     as array"). A later "key: value" replaces an earlier one.
//   - The nodes of the top-level nodelist are keyed by name (or, without a
//     name, by ring0_addr), the interfaces of totem by linknumber (or
//     ringnumber): a duplicate key keeps the last section, and the lists are
//     sorted by that key, as PVE turns them into hashes.
//   - Comments, blank lines, indentation and the order of keys and sections
//     are not kept: Marshal writes every section's names in byte order, two
//     spaces of indentation per level, a blank line after each top-level
//     section (not after top-level lists or keys), and always a nodelist and
//     a totem section. Unknown keys and sections are kept.
//
// Where PVE's parser accepts input that corosync itself refuses or that it
// turns into garbage, Parse reports an error instead: a section not closed
// at the end of the file (PVE closes it silently; corosync refuses the
// file), a section named "{" (which PVE writes as "{ {" and then reads as
// something else), and a node or interface whose name, ring0_addr,
// linknumber or ringnumber is a section (PVE would key it by a Perl
// reference address).
// Every other input gives what PVE gives, or an error where PVE dies. The
// golden files under testdata/pve were produced by PVE's own parse_conf and
// write_conf (see testdata/README.md).
//
// Errors name the file and the line: "corosync.conf:12: missing ':' after
// key 'foo'".
//
// # pvenode's cluster files
//
// corosync.conf is the member list: a node belongs to a cluster when the
// file exists and lists it. pvenode does not run corosync: pvestatd's gossip
// is to use each node's link 0 address and the port in pvenode/cluster.cfg
// (default 5420, outside corosync's UDP 5405-5412), encrypted with the key
// in priv/pvenode-gossip.key (32 random bytes, base64, mode 0600). PVE never
// reads either file.
//
// Create, AddNode and DeleteNode are the equivalents of "pvecm create",
// "pvecm addnode" and "pvecm delnode": they change the files through a Root,
// which *pvefs.Root satisfies (atomic replacement under the file's lock),
// and bump config_version as PVE's atomic_write_conf does. The package
// itself does no I/O.
package corosync
