// Package buildinfo holds the build-time constants of the node suite: our own
// version, the PVE release whose API we implement, install paths and service
// users. Everything here is immutable; paths are derived from an optional
// prefix so tests and the embedded one-node installation can run the real
// binaries without touching the host's /etc/pve.
package buildinfo

import "path/filepath"

// Version is this project's version; overridden at link time with
// -ldflags "-X github.com/pvenode/pvenode/pkg/buildinfo.Version=...".
var Version = "0.1.0-dev"

// Commit is the git revision of the build, set at link time.
var Commit = "0000000000000000"

// PVE release whose API schema this build implements (pve-docs 9.1.3).
const (
	PVEVersion = "9.1.3"
	PVERelease = "9.1"
)

// Default ports and addresses, as PVE uses them.
const (
	ProxyPort   = 8006
	DaemonAddr  = "127.0.0.1:85"
	SpicePort   = 3128
	ServiceUser = "www-data"
)

// PrefixEnv names the environment variable that re-roots every path below.
const PrefixEnv = "PVENODE_PREFIX"

// Paths are the filesystem locations the daemons use. The zero prefix gives
// PVE's own locations.
type Paths struct {
	Prefix     string // "" on a real node
	ConfigRoot string // /etc/pve
	DefaultDir string // /etc/default (pveproxy, pvedaemon, ...)
	RunDir     string // /run (pid files live in RunDir/<daemon>/<daemon>.pid)
	LogDir     string // /var/log (pveproxy/access.log, pve/tasks)
	LibDir     string // /var/lib/pve-manager
	LockDir    string // /var/lock
}

// PathsFor returns the paths re-rooted under prefix ("" for the real ones).
func PathsFor(prefix string) Paths {
	j := func(p string) string {
		if prefix == "" {
			return p
		}
		return filepath.Join(prefix, p)
	}
	return Paths{
		Prefix:     prefix,
		ConfigRoot: j("/etc/pve"),
		DefaultDir: j("/etc/default"),
		RunDir:     j("/run"),
		LogDir:     j("/var/log"),
		LibDir:     j("/var/lib/pve-manager"),
		LockDir:    j("/var/lock"),
	}
}

// PIDFile returns the pid file of the named daemon where PVE places it: the
// two daemons that run as www-data keep theirs in /run/pveproxy/ (a directory
// they own), the root daemons directly in /run.
func (p Paths) PIDFile(name string) string {
	switch name {
	case "pveproxy", "spiceproxy":
		return filepath.Join(p.RunDir, "pveproxy", name+".pid")
	}
	return filepath.Join(p.RunDir, name+".pid")
}

// DaemonSocket is the Unix socket pvedaemon serves beside 127.0.0.1:85,
// for pveproxy's forwarded calls: /run/pvedaemon/api.sock.
func (p Paths) DaemonSocket() string {
	return filepath.Join(p.RunDir, "pvedaemon", "api.sock")
}

// DaemonMuxSocket is the Unix socket where pvedaemon takes pveproxy's
// forwarded calls multiplexed on shared connections (pkg/apimux):
// /run/pvedaemon/api-mux.sock.
func (p Paths) DaemonMuxSocket() string {
	return filepath.Join(p.RunDir, "pvedaemon", "api-mux.sock")
}

// SpiceHandoffSocket is the Unix socket (SOCK_SEQPACKET) where pvedaemon
// takes SPICE client connections from spiceproxy to give them to the VM's
// QEMU (pkg/spicehandoff): /run/pvedaemon/spice-handoff.sock.
func (p Paths) SpiceHandoffSocket() string {
	return filepath.Join(p.RunDir, "pvedaemon", "spice-handoff.sock")
}

// DefaultsFile returns /etc/default/<name>.
func (p Paths) DefaultsFile(name string) string {
	return filepath.Join(p.DefaultDir, name)
}

// ClusterStateFile is where pvestatd writes its view of the cluster for
// pveproxy and pvedaemon (pkg/clusterstate): the status records every node
// publishes and the members' online state (PVE keeps these in pmxcfs).
func (p Paths) ClusterStateFile() string {
	return filepath.Join(p.RunDir, "pvestatd", "cluster.state")
}

// RRDDir is where pvestatd keeps the status history of every node, guest
// and storage (PVE: rrdcached's /var/lib/rrdcached/db).
func (p Paths) RRDDir() string {
	return filepath.Join(p.Prefix, "/var/lib/rrdcached/db")
}

// RRDSocket is where pvestatd answers status history queries (root only).
func (p Paths) RRDSocket() string {
	return filepath.Join(p.RunDir, "pvestatd", "rrd.sock")
}
