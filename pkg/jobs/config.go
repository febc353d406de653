// Package jobs is PVE's job configuration and job state: the vzdump jobs of
// /etc/pve/jobs.cfg and the replication jobs of /etc/pve/replication.cfg
// (both section-config files), and the per-node state files under
// /var/lib/pve-manager/jobs that remember when each job last ran, so that a
// restarted scheduler neither loses nor repeats a run (PVE::Jobs).
package jobs

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvetext"
	"github.com/pvenode/pvenode/pkg/sectioncfg"
)

// The config files, relative to the config root.
const (
	JobsFile        = "jobs.cfg"
	ReplicationFile = "replication.cfg"
)

// DefaultReplicationSchedule is the schedule of a replication job without one.
const DefaultReplicationSchedule = "*/15"

// apiOnlyVZDumpParams are create_job parameters that are not jobs.cfg keys.
var apiOnlyVZDumpParams = []string{"id", "dow", "starttime"}

// VZDumpType is the "vzdump" section type of jobs.cfg.
func VZDumpType() *sectioncfg.Type {
	props := VZDumpJobParams()
	for _, k := range apiOnlyVZDumpParams {
		delete(props, k)
	}
	sched := *props["schedule"]
	sched.Optional = false
	props["schedule"] = &sched
	return &sectioncfg.Type{Name: "vzdump", Props: props, CheckID: checkJobID}
}

// jobIDRE is the section ID of a jobs.cfg section: PVE's header regex
// takes any non-blank word; the API limits new IDs to pve-configid.
var jobIDRE = regexp.MustCompile(`^\S+$`)

func checkJobID(id string) (string, error) {
	if !jobIDRE.MatchString(id) || len(id) > 64 {
		return "", fmt.Errorf("invalid job ID '%s'", id)
	}
	return id, nil
}

// ReplicationType is the "local" section type of replication.cfg.
func ReplicationType() *sectioncfg.Type {
	props := ReplicationJobParams()
	delete(props, "id")
	delete(props, "type")
	return &sectioncfg.Type{Name: "local", Props: props, CheckID: ParseReplicationID}
}

var replIDRE = regexp.MustCompile(`^(\d+)-(\d+)$`)

// ParseReplicationID checks a replication job ID "<guest>-<jobnum>" and
// returns it with both numbers normalised (PVE's parse_replication_job_id).
func ParseReplicationID(id string) (string, error) {
	m := replIDRE.FindStringSubmatch(id)
	if m == nil {
		return "", fmt.Errorf("invalid replication job id '%s'", id)
	}
	guest, err1 := strconv.ParseUint(m[1], 10, 32)
	num, err2 := strconv.ParseUint(m[2], 10, 32)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("invalid replication job id '%s'", id)
	}
	if guest < 100 {
		return "", fmt.Errorf("invalid replication job id '%s' (guest IDs < 100 are reserved)", id)
	}
	return fmt.Sprintf("%d-%d", guest, num), nil
}

// VZDumpJob is one section of jobs.cfg as the scheduler needs it.
type VZDumpJob struct {
	ID           string
	Schedule     string
	Enabled      bool
	Node         string // "" runs on every node
	RepeatMissed bool
	// Opts are all options in file form (comment decoded), for the API
	// and for the vzdump call.
	Opts  map[string]string
	Lists map[string][]string
}

// ParseJobs parses jobs.cfg. Sections of other types (realm-sync) are kept
// in the Config for writing back; Jobs returns the vzdump ones.
func ParseJobs(name string, data []byte) (*sectioncfg.Config, error) {
	cfg, err := sectioncfg.Parse(name, data, JobTypes())
	for _, s := range cfg.Sections {
		if s.Type == "vzdump" {
			if _, ok := s.Opts["enabled"]; !ok {
				s.Opts["enabled"] = "1" // PVE fills it in, so it is always written
			}
		}
	}
	return cfg, err
}

// JobTypes are the section types of jobs.cfg this package implements.
func JobTypes() []*sectioncfg.Type { return []*sectioncfg.Type{VZDumpType()} }

// ReplicationTypes are the section types of replication.cfg.
func ReplicationTypes() []*sectioncfg.Type { return []*sectioncfg.Type{ReplicationType()} }

// VZDumpJobs returns the vzdump jobs of a parsed jobs.cfg, in file order.
func VZDumpJobs(cfg *sectioncfg.Config) []VZDumpJob {
	var out []VZDumpJob
	for _, s := range cfg.Sections {
		if s.Type != "vzdump" {
			continue
		}
		opts := maps.Clone(s.Opts)
		if c, ok := opts["comment"]; ok {
			opts["comment"] = pvetext.Decode(c)
		}
		out = append(out, VZDumpJob{
			ID:           s.ID,
			Schedule:     s.Opts["schedule"],
			Enabled:      s.Opts["enabled"] != "0",
			Node:         s.Opts["node"],
			RepeatMissed: s.Opts["repeat-missed"] == "1",
			Opts:         opts,
			Lists:        maps.Clone(s.Lists),
		})
	}
	return out
}

// ReplicationJob is one section of replication.cfg.
type ReplicationJob struct {
	ID       string
	Guest    int
	JobNum   int
	Target   string
	Schedule string // DefaultReplicationSchedule when the file has none
	Disabled bool
	Opts     map[string]string // file form, comment decoded
}

// ParseReplication parses replication.cfg; like PVE, of two jobs for the
// same guest and target the later is dropped (and reported).
func ParseReplication(name string, data []byte) (*sectioncfg.Config, error) {
	cfg, err := sectioncfg.Parse(name, data, ReplicationTypes())
	seen := map[string]bool{}
	kept := cfg.Sections[:0]
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range cfg.Sections {
		guest, _, _ := splitReplicationID(s.ID)
		key := fmt.Sprintf("%d/%s", guest, s.Opts["target"])
		if seen[key] {
			errs = append(errs, &sectioncfg.ParseError{File: name, Line: s.Line, Section: s.ID,
				Msg: fmt.Sprintf("delete job %s: replication job for guest '%d' to target '%s' already exists", s.ID, guest, s.Opts["target"])})
			continue
		}
		seen[key] = true
		kept = append(kept, s)
	}
	cfg.Sections = kept
	return cfg, errors.Join(errs...)
}

func splitReplicationID(id string) (guest, num int, ok bool) {
	m := replIDRE.FindStringSubmatch(id)
	if m == nil {
		return 0, 0, false
	}
	guest, _ = strconv.Atoi(m[1])
	num, _ = strconv.Atoi(m[2])
	return guest, num, true
}

// ReplicationJobs returns the jobs of a parsed replication.cfg.
func ReplicationJobs(cfg *sectioncfg.Config) []ReplicationJob {
	var out []ReplicationJob
	for _, s := range cfg.Sections {
		guest, num, _ := splitReplicationID(s.ID)
		opts := maps.Clone(s.Opts)
		if c, ok := opts["comment"]; ok {
			opts["comment"] = pvetext.Decode(c)
		}
		sched := s.Opts["schedule"]
		if sched == "" {
			sched = DefaultReplicationSchedule
		}
		out = append(out, ReplicationJob{ID: s.ID, Guest: guest, JobNum: num, Target: s.Opts["target"],
			Schedule: sched, Disabled: s.Opts["disable"] == "1", Opts: opts})
	}
	return out
}

// CheckValue checks one option of a section type, for the API's updates.
func CheckValue(t *sectioncfg.Type, key, value string) error {
	s, ok := t.Props[key]
	if !ok {
		return fmt.Errorf("%s: unknown property", key)
	}
	return api.CheckValue(s, value)
}
