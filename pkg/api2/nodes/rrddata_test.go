package nodes_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/rrd"
)

// rrdStart is the time of the first record of the test history, which
// ends two hours later at a multiple of 6 hours.
const rrdStart = 1_699_999_200

// newRRDEnv serves the node methods over an rrd.Store holding two hours
// of records of node n1, guest 100 and storage n1/local, as pvestatd
// broadcasts them every 10 s, queried 30 s after the last.
func newRRDEnv(t *testing.T, withRRD bool) (*apitest.Client, *rrd.Store) {
	t.Helper()
	env := apitest.New(t, apitest.Setup{Files: map[string]string{
		"user.cfg": apitest.RootUser + "user:auditor@pve:1:0:::::\nuser:vmuser@pve:1:0:::::\nuser:store@pve:1:0:::::\nuser:nobody@pve:1:0:::::\n" +
			"acl:1:/nodes/n1:auditor@pve:PVEAuditor:\n" +
			"acl:1:/vms/100:vmuser@pve:PVEVMUser:\n" +
			"acl:1:/storage/local:store@pve:PVEDatastoreUser:\n",
	}})
	last := int64(rrdStart + 2*3600)
	st, err := rrd.Open(rrd.Options{Dir: filepath.Join(t.TempDir(), "db"), FlushInterval: -1,
		Now: func() time.Time { return time.Unix(last+30, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for tm := int64(rrdStart); tm <= last; tm += 10 {
		n := tm - rrdStart
		for key, data := range map[string]string{
			"pve-node-9.0/n1": fmt.Sprintf("%d::%d:0.5:8:0.125:0.01:16777216:8388608:0:0:100000000:50000000:%d:%d:8000000:U:0.1:0.2:0.3:0.4:0.5",
				n, tm, 2000*n, 3000*n),
			"pve-vm-9.0/100": fmt.Sprintf("%d:web:running:0:%d:2:0.25:1073741824:536870912:0:0:%d:%d:%d:%d:500000000:0:0:0:0:0:0",
				n, tm, 1000*n, 2000*n, 4096*n, 8192*n),
			"pve2-storage/n1/local": fmt.Sprintf("%d:1000000000:%d", tm, 100000+n),
		} {
			if err := st.UpdateRecord(key, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := nodes.Deps{Privs: env.Auth}
	if withRRD {
		d.RRD = st
	}
	return env.Serve(api.NewRegistry(nodes.Methods(d))), st
}

type point map[string]float64

func decodePoints(t *testing.T, data json.RawMessage) []point {
	t.Helper()
	var pts []point
	if err := json.Unmarshal(data, &pts); err != nil {
		t.Fatalf("decode %.200s: %v", data, err)
	}
	return pts
}

func TestRRDData(t *testing.T) {
	c, _ := newRRDEnv(t, true)
	last := float64(rrdStart + 2*3600)
	for _, tt := range []struct {
		path, timeframe, cf string
		points              int
		step                float64
		want                point // fields of the newest point
		absent              []string
	}{
		{"/nodes/n1/rrddata", "hour", "", 60, 60,
			point{"time": last, "cpu": 0.125, "loadavg": 0.5, "maxcpu": 8, "memtotal": 16777216, "netin": 2000, "netout": 3000, "pressurememoryfull": 0.5},
			[]string{"arcsize"}},
		{"/nodes/n1/rrddata", "day", "MAX", 1440, 60, point{"time": last, "iowait": 0.01}, nil},
		{"/nodes/n1/rrddata", "decade", "", 569, 604800, nil, nil}, // the week in progress has no value: left out
		{"/nodes/n1/qemu/100/rrddata", "hour", "AVERAGE", 60, 60,
			point{"time": last, "cpu": 0.25, "mem": 536870912, "maxmem": 1073741824, "netin": 1000, "netout": 2000, "diskread": 4096, "diskwrite": 8192, "memhost": 500000000},
			nil},
		{"/nodes/n1/qemu/100/rrddata", "week", "", 336, 1800, point{"time": last, "cpu": 0.25}, nil},
		{"/nodes/n1/storage/local/rrddata", "month", "MAX", 1440, 1800, point{"time": last, "total": 1e9, "used": 100000 + 7175}, nil}, // the newest minute's average
		{"/nodes/n1/storage/local/rrddata", "year", "", 1439, 21600, nil, nil},
	} {
		q := apitest.Values("timeframe", tt.timeframe)
		if tt.cf != "" {
			q.Set("cf", tt.cf)
		}
		pts := decodePoints(t, c.Must("root@pam", "GET", tt.path, q))
		if len(pts) != tt.points {
			t.Errorf("%s %s: %d points; want %d", tt.path, tt.timeframe, len(pts), tt.points)
			continue
		}
		if d := pts[1]["time"] - pts[0]["time"]; d != tt.step {
			t.Errorf("%s %s: step %v; want %v", tt.path, tt.timeframe, d, tt.step)
		}
		newest := pts[len(pts)-1]
		for k, v := range tt.want {
			if newest[k] != v {
				t.Errorf("%s %s: newest %s = %v; want %v (%v)", tt.path, tt.timeframe, k, newest[k], v, newest)
			}
		}
		for _, k := range tt.absent {
			if _, ok := newest[k]; ok {
				t.Errorf("%s %s: unknown %s is in the answer", tt.path, tt.timeframe, k)
			}
		}
		if tt.timeframe != "hour" && len(pts[0]) != 1 { // before the history: only the time
			t.Errorf("%s %s: first point %v; want only its time", tt.path, tt.timeframe, pts[0])
		}
	}
}

func TestRRDDataErrors(t *testing.T) {
	c, st := newRRDEnv(t, true)
	for _, tt := range []struct {
		user, path string
		q          []string
		status     int
		msg        string
	}{
		{"root@pam", "/nodes/n1/qemu/101/rrddata", []string{"timeframe", "hour"}, http.StatusInternalServerError,
			"RRD error: opening '" + st.Path("pve-vm-9.0/101") + "': No such file or directory\n"},
		{"root@pam", "/nodes/n2/rrddata", []string{"timeframe", "hour"}, http.StatusInternalServerError,
			"RRD error: opening '" + st.Path("pve-node-9.0/n2") + "': No such file or directory\n"},
		{"root@pam", "/nodes/n1/qemu/100/rrddata", []string{"timeframe", "decade"}, http.StatusBadRequest, "Parameter verification failed.\n"},
		{"root@pam", "/nodes/n1/rrddata", []string{"timeframe", "hour", "cf", "MIN"}, http.StatusBadRequest, "Parameter verification failed.\n"},
		{"root@pam", "/nodes/n1/rrddata", nil, http.StatusBadRequest, "Parameter verification failed.\n"},
		{"nobody@pve", "/nodes/n1/rrddata", []string{"timeframe", "hour"}, http.StatusForbidden, "Permission check failed (/nodes/n1, Sys.Audit)\n"},
		{"vmuser@pve", "/nodes/n1/rrddata", []string{"timeframe", "hour"}, http.StatusForbidden, "Permission check failed (/nodes/n1, Sys.Audit)\n"},
		{"auditor@pve", "/nodes/n1/rrddata", []string{"timeframe", "hour"}, http.StatusOK, ""},
		{"auditor@pve", "/nodes/n1/qemu/100/rrddata", []string{"timeframe", "hour"}, http.StatusForbidden, "Permission check failed (/vms/100, VM.Audit)\n"},
		{"vmuser@pve", "/nodes/n1/qemu/100/rrddata", []string{"timeframe", "hour"}, http.StatusOK, ""},
		{"nobody@pve", "/nodes/n1/qemu/100/rrddata", []string{"timeframe", "hour"}, http.StatusForbidden, "Permission check failed (/vms/100, VM.Audit)\n"},
		{"store@pve", "/nodes/n1/storage/local/rrddata", []string{"timeframe", "hour"}, http.StatusOK, ""},
		{"vmuser@pve", "/nodes/n1/storage/local/rrddata", []string{"timeframe", "hour"}, http.StatusForbidden,
			"Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)\n"},
	} {
		r := c.Do(tt.user, "GET", tt.path, apitest.Values(tt.q...))
		if r.Status != tt.status || tt.msg != "" && r.Message != tt.msg {
			t.Errorf("GET %s %v as %s = %d %q; want %d %q", tt.path, tt.q, tt.user, r.Status, r.Message, tt.status, tt.msg)
		}
	}
}

func TestRRDDataNotImplemented(t *testing.T) {
	c, _ := newRRDEnv(t, false)
	r := c.Do("root@pam", "GET", "/nodes/n1/rrddata", apitest.Values("timeframe", "hour"))
	if r.Status != http.StatusNotImplemented || r.Message != "not implemented: RRD statistics in this daemon\n" {
		t.Errorf("without RRD: %d %q; want 501", r.Status, r.Message)
	}
}
