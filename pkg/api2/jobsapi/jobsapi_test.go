package jobsapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/jobsapi"
	"github.com/pvenode/pvenode/pkg/jobs"
)

const userCfg = `user:alice@pve:1:0::::::
user:bob@pve:1:0::::::

pool:lab::100::

acl:1:/:alice@pve:Administrator:
acl:1:/vms/100:bob@pve:PVEAuditor:
`

func setup(t *testing.T) (*apitest.Client, *jobs.Store) {
	env := apitest.New(t, apitest.Setup{Files: map[string]string{
		"user.cfg": userCfg,
		"nodes/" + apitest.Node + "/qemu-server/100.conf": "name: web\nmemory: 512\nscsi0: local:100/vm-100-disk-0.qcow2,size=1G\n",
		"nodes/" + apitest.Node + "/qemu-server/101.conf": "name: db\nmemory: 512\n",
		"nodes/" + apitest.Node + "/qemu-server/102.conf": "memory: 512\n",
	}})
	store := &jobs.Store{Dir: filepath.Join(env.Dir, "state", "jobs"), LockDir: filepath.Join(env.Dir, "state", "lock")}
	d := &jobsapi.Deps{Root: env.Root, Access: env.Auth, Store: store,
		Now: func() time.Time { return time.Date(2026, 3, 11, 14, 7, 30, 0, time.UTC) }}
	return env.Serve(api.NewRegistry(jobsapi.Methods(d))), store
}

// Backup jobs: create (with PVE's checks), list with next-run, read with
// typed values, update (selection rules, delete), delete; jobs.cfg is
// written in PVE's form and the node's job state follows.
func TestBackupJobs(t *testing.T) {
	c, store := setup(t)
	v := apitest.Values
	// refused creations change nothing
	for _, tc := range []struct {
		user   string
		params []string
		status int
		want   string
	}{
		{"root@pam", []string{"all", "1"}, 400, "neither 'starttime' nor 'schedule' were set"},
		{"root@pam", []string{"schedule", "daily", "all", "1", "vmid", "100"}, 400, "option conflicts with option 'vmid'"},
		{"root@pam", []string{"schedule", "daily"}, 400, "property is missing"},
		{"root@pam", []string{"schedule", "12:61", "all", "1"}, 400, "schedule"},
		{"root@pam", []string{"schedule", "daily", "all", "1", "prune-backups", "keep-all=1,keep-last=1"}, 400, "prune-backups"},
		{"alice@pve", []string{"schedule", "daily", "all", "1", "dumpdir", "/tmp"}, 400, "Only root may set this option."},
		{"bob@pve", []string{"schedule", "daily", "all", "1"}, 403, ""},
	} {
		r := c.Do(tc.user, "POST", "/cluster/backup", v(tc.params...))
		if r.Status != tc.status || !strings.Contains(r.Body, tc.want) {
			t.Errorf("%v: %d %s", tc.params, r.Status, r.Body)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "jobs.cfg")); !os.IsNotExist(err) {
		t.Fatalf("jobs.cfg written by refused calls: %v", err)
	}
	c.Must("root@pam", "POST", "/cluster/backup", v("id", "nightly", "starttime", "02:30", "dow", "sat,sun",
		"all", "1", "exclude", "101", "storage", "local", "mode", "snapshot", "compress", "zstd",
		"prune-backups", "keep-daily=7,keep-last=3", "comment", "nightly: all", "exclude-path", "/tmp"))
	c.Must("alice@pve", "POST", "/cluster/backup", v("schedule", "*/30", "vmid", "100"))
	if r := c.Do("root@pam", "POST", "/cluster/backup", v("id", "nightly", "schedule", "daily", "all", "1")); r.Status != 500 || !strings.Contains(r.Message, "Job 'nightly' already exists") {
		t.Fatalf("duplicate: %d %s", r.Status, r.Body)
	}
	file := c.File("jobs.cfg")
	want := "vzdump: nightly\n\tcomment nightly%3A all\n\tschedule sat,sun 02:30\n\tall 1\n\tcompress zstd\n\tenabled 1\n" +
		"\texclude 101\n\texclude-path /tmp\n\tmode snapshot\n\tprune-backups keep-daily=7,keep-last=3\n\tstorage local\n\n"
	if !strings.HasPrefix(file, want) {
		t.Fatalf("jobs.cfg:\n%s\nwant prefix:\n%s", file, want)
	}
	var list []map[string]any
	if r := c.Do("bob@pve", "GET", "/cluster/backup", nil); r.Status != 403 {
		t.Fatalf("bob lists jobs without Sys.Audit: %d", r.Status)
	}
	if err := json.Unmarshal(c.Must("alice@pve", "GET", "/cluster/backup", nil), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("list %v", list)
	}
	j := list[0]
	if j["id"] != "nightly" || j["all"] != float64(1) || j["comment"] != "nightly: all" ||
		j["next-run"] != float64(time.Date(2026, 3, 14, 2, 30, 0, 0, time.Local).Unix()) {
		t.Fatalf("job %v", j)
	}
	if pb, ok := j["prune-backups"].(map[string]any); !ok || pb["keep-daily"] != float64(7) {
		t.Fatalf("prune-backups %v", j["prune-backups"])
	}
	if ep, ok := j["exclude-path"].([]any); !ok || len(ep) != 1 {
		t.Fatalf("exclude-path %v", j["exclude-path"])
	}
	uuid, _ := list[1]["id"].(string)
	if len(uuid) != 36 {
		t.Fatalf("generated id %q", uuid)
	}
	st, err := store.Read("vzdump", "nightly")
	if err != nil || st == nil || st.State != jobs.StateCreated {
		t.Fatalf("job state %+v %v", st, err)
	}
	// update: vmid replaces all/exclude; delete removes options
	c.Must("root@pam", "PUT", "/cluster/backup/nightly", v("vmid", "100,101", "delete", "comment,mode"))
	var got map[string]any
	json.Unmarshal(c.Must("root@pam", "GET", "/cluster/backup/nightly", nil), &got)
	for _, k := range []string{"all", "exclude", "comment", "mode"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s still set: %v", k, got)
		}
	}
	if got["vmid"] != "100,101" {
		t.Errorf("vmid %v", got["vmid"])
	}
	if r := c.Do("root@pam", "PUT", "/cluster/backup/nightly", v("delete", "bogus")); r.Status != 400 {
		t.Errorf("delete of an unknown option: %d %s", r.Status, r.Body)
	}
	if r := c.Do("root@pam", "PUT", "/cluster/backup/nope", v("mode", "stop")); r.Status != 500 {
		t.Errorf("update of a missing job: %d %s", r.Status, r.Body)
	}
	// schedule change → updated in the state
	c.Must("root@pam", "PUT", "/cluster/backup/nightly", v("schedule", "weekly"))
	if st, _ := store.Read("vzdump", "nightly"); st.Updated == 0 || st.Config["schedule"] != "weekly" {
		t.Errorf("state after a schedule change %+v", st)
	}
	// not backed up: 102 (101 is covered by nightly now, 100 by both)
	var nb []map[string]any
	json.Unmarshal(c.Must("root@pam", "GET", "/cluster/backup-info/not-backed-up", nil), &nb)
	if len(nb) != 1 || nb[0]["vmid"] != float64(102) || nb[0]["type"] != "qemu" {
		t.Fatalf("not backed up %v", nb)
	}
	c.Must("root@pam", "DELETE", "/cluster/backup/nightly", nil)
	json.Unmarshal(c.Must("root@pam", "GET", "/cluster/backup-info/not-backed-up", nil), &nb)
	if len(nb) != 2 || nb[0]["vmid"] != float64(101) || nb[0]["name"] != "db" {
		t.Fatalf("not backed up after delete %v", nb)
	}
	if st, _ := store.Read("vzdump", "nightly"); st != nil {
		t.Errorf("state of the deleted job %+v", st)
	}
	if r := c.Do("root@pam", "DELETE", "/cluster/backup/nightly", nil); r.Status != 400 || !strings.Contains(r.Body, "No such job") {
		t.Errorf("second delete: %d %s", r.Status, r.Body)
	}
}

// schedule-analyze lists the next runs with Perl's gmtime text.
func TestScheduleAnalyze(t *testing.T) {
	c, _ := setup(t)
	start := time.Date(2026, 3, 11, 14, 7, 30, 0, time.UTC).Unix()
	var got []struct {
		Timestamp int64  `json:"timestamp"`
		UTC       string `json:"utc"`
	}
	json.Unmarshal(c.Must("bob@pve", "GET", "/cluster/jobs/schedule-analyze",
		apitest.Values("schedule", "sat *-1..7 15:00 UTC", "starttime", itoa(start), "iterations", "3")), &got)
	want := []string{"Sat Apr  4 15:00:00 2026", "Sat May  2 15:00:00 2026", "Sat Jun  6 15:00:00 2026"}
	if len(got) != 3 {
		t.Fatalf("%v", got)
	}
	for i, w := range want {
		if got[i].UTC != w || time.Unix(got[i].Timestamp, 0).UTC().Format(time.ANSIC) != w {
			t.Errorf("%d: %+v, want %s", i, got[i], w)
		}
	}
	if r := c.Do("bob@pve", "GET", "/cluster/jobs/schedule-analyze", apitest.Values("schedule", "mon..fry")); r.Status != 400 || r.Errors["schedule"] == "" {
		t.Errorf("bad schedule: %d %s", r.Status, r.Body)
	}
	// a date that never comes: no runs
	json.Unmarshal(c.Must("bob@pve", "GET", "/cluster/jobs/schedule-analyze", apitest.Values("schedule", "2021-02-29")), &got)
	if len(got) != 0 {
		t.Errorf("2021-02-29: %v", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Replication jobs: PVE's checks on creation, the file's form, updates
// with digest, removal marking, and the node's status list.
func TestReplicationJobs(t *testing.T) {
	c, _ := setup(t)
	v := apitest.Values
	for _, tc := range []struct {
		params []string
		want   string
	}{
		{[]string{"id", "999-0", "target", "pve2", "type", "local"}, "Guest '999' does not exist."},
		{[]string{"id", "100-0", "target", "pve2", "type", "local"}, "Target 'pve2' does not exist."},
		{[]string{"id", "100-0", "target", apitest.Node, "type", "local"}, "Source and target must not be identical"},
	} {
		if r := c.Do("root@pam", "POST", "/cluster/replication", v(tc.params...)); r.Status == http.StatusOK || !strings.Contains(r.Message, tc.want) {
			t.Errorf("%v: %d %s", tc.params, r.Status, r.Body)
		}
	}
	if r := c.Do("bob@pve", "POST", "/cluster/replication", v("id", "100-0", "target", "pve2", "type", "local")); r.Status != 403 {
		t.Errorf("bob without VM.Replicate: %d", r.Status)
	}
	// a two-node cluster makes pve2 a target
	c.Root.WriteFile("corosync.conf", []byte(corosyncConf), 0o640)
	c.Must("root@pam", "POST", "/cluster/replication", v("id", "100-0", "target", "pve2", "type", "local", "rate", "50", "comment", "to pve2"))
	if r := c.Do("root@pam", "POST", "/cluster/replication", v("id", "100-1", "target", "pve2", "type", "local")); !strings.Contains(r.Message, "already exists") {
		t.Errorf("second job to the same target: %d %s", r.Status, r.Body)
	}
	want := "local: 100-0\n\tcomment to pve2\n\ttarget pve2\n\trate 50\n\tsource " + apitest.Node + "\n\n"
	if got := c.File("replication.cfg"); got != want {
		t.Fatalf("replication.cfg %q, want %q", got, want)
	}
	var job map[string]any
	json.Unmarshal(c.Must("bob@pve", "GET", "/cluster/replication/100-0", nil), &job)
	if job["guest"] != float64(100) || job["jobnum"] != float64(0) || job["rate"] != float64(50) || job["digest"] == "" {
		t.Fatalf("job %v", job)
	}
	if r := c.Do("root@pam", "PUT", "/cluster/replication/100-0", v("schedule", "*/5", "digest", "0000")); r.Status != 500 || !strings.Contains(r.Message, "detected modified configuration") {
		t.Errorf("stale digest: %d %s", r.Status, r.Body)
	}
	c.Must("root@pam", "PUT", "/cluster/replication/100-0", v("schedule", "*/5", "delete", "rate", "digest", job["digest"].(string)))
	var status []map[string]any
	json.Unmarshal(c.Must("bob@pve", "GET", "/nodes/"+apitest.Node+"/replication", nil), &status)
	if len(status) != 1 || status[0]["id"] != "100-0" || status[0]["schedule"] != "*/5" || status[0]["rate"] != nil {
		t.Fatalf("status %v", status)
	}
	c.Must("root@pam", "DELETE", "/cluster/replication/100-0", v("keep", "1"))
	if got := c.File("replication.cfg"); !strings.Contains(got, "\tremove_job local\n") {
		t.Errorf("marked for removal: %q", got)
	}
	c.Must("root@pam", "DELETE", "/cluster/replication/100-0", v("force", "1"))
	if got := c.File("replication.cfg"); got != "" {
		t.Errorf("after forced removal: %q", got)
	}
}

const corosyncConf = `totem {
  cluster_name: lab
  config_version: 2
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  secauth: on
  version: 2
}

nodelist {
  node {
    name: ` + apitest.Node + `
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 127.0.1.1
  }
  node {
    name: pve2
    nodeid: 2
    quorum_votes: 1
    ring0_addr: 127.0.1.2
  }
}

quorum {
  provider: corosync_votequorum
}

logging {
  to_syslog: yes
  debug: off
}
`
