package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// taskLogFile is the log file of upid under the node's prefix (PVE's
// layout: the last hex digit of the start time names the directory).
func (n *node) taskLogFile(upid string) string {
	f := strings.Split(upid, ":")
	st := f[4]
	return filepath.Join(n.prefix, "var/log/pve/tasks", st[len(st)-1:], upid)
}

// TestTaskLogDownload: GET .../tasks/{upid}/log?download=1 through pveproxy
// answers the task's log file as pvedaemon sends it (forwarded): 200,
// text/plain, PVE's attachment name, the file as body without an envelope,
// whatever the format; a large log is gzipped for a client that accepts it.
func TestTaskLogDownload(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)

	// A real task: a small ISO upload's imgcopy.
	b, size := uploadBody([][2]string{{"content", "iso"}}, "tasklog.iso", bytes.NewReader(make([]byte, 64<<10)), 64<<10)
	r := c.upload(b, size)
	var upid string
	decode(t, r, &upid)
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("upload task: %s\n%s", st, taskLog(t, c, upid))
	}
	want, err := os.ReadFile(n.taskLogFile(upid))
	if err != nil {
		t.Fatal(err)
	}
	start, _ := strconv.ParseInt(strings.Split(upid, ":")[4], 16, 64)
	disp := fmt.Sprintf(`attachment; filename="task-%s-imgcopy-%s.log"`, nodeName,
		time.Unix(start, 0).UTC().Format("2006-01-02T15:04:05Z"))
	logPath := "/nodes/" + nodeName + "/tasks/" + url.PathEscape(upid) + "/log"
	for _, format := range []string{"json", "extjs"} {
		r := c.get("/api2/" + format + logPath + "?download=1")
		hd := r.header
		if r.status != http.StatusOK || hd.Get("Content-Type") != "text/plain" || hd.Get("Content-Disposition") != disp ||
			hd.Get("Content-Length") != strconv.Itoa(len(want)) || hd.Get("Content-Encoding") != "" {
			t.Errorf("%s download: %d, header %v", format, r.status, hd)
		}
		if !bytes.Equal(r.body, want) {
			t.Errorf("%s download: body %q, want the log file %q", format, r.body, want)
		}
	}
	if r := c.get("/api2/json" + logPath + "?download=1&limit=5"); r.status != http.StatusInternalServerError ||
		r.message != "'download' cannot be used together with 'start' or 'limit' parameters\n" {
		t.Errorf("download with limit: %d %q", r.status, r.message)
	}

	// A large log (a task of PVE's whose log pvedaemon finds in its
	// directory): identity by default, gzip for a client that asks.
	big := "UPID:" + nodeName + ":0000ABCD:00001234:6700000F:vzdump:100:" + adminUser + ":"
	var text bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&text, "INFO: line %d of a long backup log\n", i)
	}
	if err := os.MkdirAll(filepath.Dir(n.taskLogFile(big)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.taskLogFile(big), text.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	bigPath := "/api2/json/nodes/" + nodeName + "/tasks/" + url.PathEscape(big) + "/log?download=1"
	r = c.get(bigPath)
	if r.status != http.StatusOK || r.header.Get("Content-Encoding") != "" || !bytes.Equal(r.body, text.Bytes()) {
		t.Errorf("large log: %d, header %v, %d bytes of %d", r.status, r.header, len(r.body), text.Len())
	}
	r = c.must(http.MethodGet, bigPath, nil, http.Header{"Accept-Encoding": {"gzip"}})
	if r.status != http.StatusOK || r.header.Get("Content-Encoding") != "gzip" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), `attachment; filename="task-`+nodeName+`-vzdump-`) {
		t.Fatalf("large log, gzip: %d, header %v", r.status, r.header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, text.Bytes()) {
		t.Errorf("large log, gzip: %d bytes (%v), want %d", len(got), err, text.Len())
	}
}
