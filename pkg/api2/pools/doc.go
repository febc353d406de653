// Package pools declares the /pools methods: listing, reading, creating,
// updating and deleting resource pools (nested up to three levels, "a/b/c"),
// including PVE 9's deprecated /pools/{poolid} variants, with PVE's paths,
// parameters, answers, messages and permission rules.
//
// Pools live in user.cfg (pool: lines); writes go through the config root
// under the user.cfg lock (access.UpdateUserCfg, PVE's lock_user_config).
//
// PVE answers a pool's members from the cluster's VM list and storage.cfg:
// a guest is listed only while a config of it exists, a storage only while
// storage.cfg defines it. Until this build has a VM inventory and a storage
// package, both are read here from the config root: guest configs under
// nodes/<node>/{qemu-server,lxc,openvz}/<vmid>.conf as pmxcfs indexes them,
// and storage.cfg with PVE's implicit "local" storage and per-type default
// content. Live figures (guest status, name, CPU, memory, disk; storage
// usage) come from pvestatd's RRD data in PVE, which this build does not
// have yet; members carry status "unknown" as PVE's do when that data is
// missing.
package pools
