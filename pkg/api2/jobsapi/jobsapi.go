// Package jobsapi declares and answers the job API: the vzdump jobs of
// /cluster/backup (jobs.cfg), /cluster/backup-info/not-backed-up,
// /cluster/jobs/schedule-analyze, and the replication jobs of
// /cluster/replication (replication.cfg) with /nodes/{node}/replication,
// as pve-manager's PVE::API2::Backup, BackupInfo, Cluster::Jobs and
// ReplicationConfig do.
package jobsapi

import (
	"context"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/jobs"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/sectioncfg"
)

// Access is what the methods need of access control.
type Access interface {
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
	UserCfg() *access.UserCfg
}

// Deps are the collaborators of the job methods.
type Deps struct {
	// Root is the config root; nil answers every method with 501.
	Root   *pvefs.Root
	Access Access
	// Store is this node's job state (/var/lib/pve-manager/jobs), created
	// and removed with the jobs as PVE does; nil where the daemon keeps
	// none (pveproxy forwards the writes).
	Store *jobs.Store
	// ReplicationState reads this node's replication state file; nil
	// answers the node's replication status with no runs.
	ReplicationState func() (jobs.ReplicationState, error)
	// Run runs this node's replication jobs; nil answers the run methods
	// with 501 (pveproxy forwards them).
	Run *ReplicationRun
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (d *Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Methods returns the declarations of this package.
func Methods(d *Deps) []api.Method {
	var out []api.Method
	out = append(out, backupMethods(d)...)
	out = append(out, jobsMethods(d)...)
	out = append(out, replicationMethods(d)...)
	out = append(out, nodeReplicationMethods(d)...)
	return out
}

// readConfig reads and parses a section-config file of the root. Problems
// in the file do not fail a read (PVE reads what it can); they are
// returned for writers, which refuse to rewrite a broken file blind.
func readConfig(root *pvefs.Root, name string, parse func(string, []byte) (*sectioncfg.Config, error)) (*sectioncfg.Config, error, error) {
	data, err := root.ReadFileOrEmpty(name)
	if err != nil {
		return nil, nil, err
	}
	cfg, perr := parse(name, data)
	return cfg, perr, nil
}

// updateConfig runs fn on the parsed file under its lock and writes the
// result; nothing is written if fn fails.
func updateConfig(ctx context.Context, root *pvefs.Root, name string, types []*sectioncfg.Type,
	parse func(string, []byte) (*sectioncfg.Config, error), fn func(cfg *sectioncfg.Config) error) error {
	return root.Update(ctx, name, 0o640, func(old []byte) ([]byte, error) {
		cfg, _ := parse(name, old)
		if err := fn(cfg); err != nil {
			return nil, err
		}
		return cfg.Marshal(types), nil
	})
}

func (d *Deps) ready() error {
	if d.Root == nil {
		return api.Errorf(501, "not implemented: job configuration in this daemon")
	}
	return nil
}
