package httpd

import (
	"flag"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// waitLines flushes the log until it has n lines: the access log line is
// written when the handler returns, which a client may see after it has
// read the response.
func waitLines(t *testing.T, lines func() []string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := lines()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// apiHandler plays the API layer: ?user= sets the user, ?size= the body
// length, ?status= the status.
var apiHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if u := q.Get("user"); u != "" {
		reqinfo.FromContext(r.Context()).SetUser(u)
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		status, _ = strconv.Atoi(s)
	}
	size, _ := strconv.Atoi(q.Get("size"))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, strings.Repeat("a", size))
})

func TestAccessLogGolden(t *testing.T) {
	alog, lines := testLog(t)
	ln := listen(t, "127.0.0.1")
	serve(t, ln, Chain(apiHandler,
		alog.Wrap,
		RealIP("X-Forwarded-For", nil),
		StdHeaders,
		Limits(MaxBody),
		Compress(nil),
	))
	base := "http://" + ln.Addr().String()
	c := plainClient(nil)

	reqs := []struct {
		method, path string
		hdr          map[string]string
	}{
		{"GET", "/api2/json/version?user=root@pam&size=57", nil},
		{"GET", "/api2/json/nodes?user=admin@pve!tok&size=0&status=404", nil},
		{"GET", "/api2/json/cluster/resources?user=root@pam&size=4000", map[string]string{"Accept-Encoding": "gzip"}},
		{"GET", "/api2/json/nodes?x=%20a&size=10", map[string]string{"X-Forwarded-For": "203.0.113.9"}},
		{"PATCH", "/api2/json/x", nil},
		{"GET", "/api2/json/access/ticket?status=401&size=0", nil},
	}
	for i, rq := range reqs {
		req := newRequest(t, rq.method, base+rq.path, nil)
		for k, v := range rq.hdr {
			req.Header.Set(k, v)
		}
		do(t, c, req)
		waitLines(t, lines, i+1)
	}
	alog.Denied(netip.MustParseAddrPort("192.0.2.10:5555"))
	alog.Redirected(netip.MustParseAddrPort("[2001:db8::10]:5555"), "GET / HTTP/1.1", http.StatusMovedPermanently)
	alog.Line(netip.Addr{}, "", "GET / HTTP/1.1", 200, 0)

	got := strings.Join(lines(), "\n") + "\n"
	golden := filepath.Join("testdata", "access.log.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	if got != string(want) {
		t.Errorf("access log:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

func TestAccessLogLocalTime(t *testing.T) {
	// The default clock prints local time, like PVE's strftime(localtime).
	var buf syncBuffer
	a := NewAccessLog(&buf, AccessLogOptions{})
	before := time.Now()
	a.Line(netip.MustParseAddr("127.0.0.1"), "", "-", 403, -1)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	stamp := strings.SplitN(strings.SplitN(buf.String(), "[", 2)[1], "]", 2)[0]
	ts, err := time.Parse(accessTimeFormat, stamp)
	if err != nil {
		t.Fatalf("parse %q: %v", stamp, err)
	}
	if _, off := ts.Zone(); off != func() int { _, o := before.Zone(); return o }() {
		t.Errorf("time %q not in the local zone", stamp)
	}
}

func TestOpenAccessLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	a, err := OpenAccessLog(path, AccessLogOptions{Now: fixedClock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatalf("OpenAccessLog: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if got := fi.Mode().Perm(); got != AccessLogMode {
		t.Errorf("mode = %v; want %v", got, os.FileMode(AccessLogMode))
	}
	line := func(n int) {
		a.Line(netip.MustParseAddr("127.0.0.1"), "", "GET /"+strconv.Itoa(n)+" HTTP/1.1", 200, 1)
	}
	line(1)
	// logrotate: move the file away, then reload reopens.
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatalf("rename: %v", err)
	}
	line(2)
	if err := a.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	line(3)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	line(4) // after Close: dropped

	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		return string(b)
	}
	pre := `127.0.0.1 - - [24/08/2026:10:15:02 +0200] "GET /`
	if got, want := read(rotated), pre+`1 HTTP/1.1" 200 1`+"\n"+pre+`2 HTTP/1.1" 200 1`+"\n"; got != want {
		t.Errorf("rotated file:\n%s\nwant:\n%s", got, want)
	}
	if got, want := read(path), pre+`3 HTTP/1.1" 200 1`+"\n"; got != want {
		t.Errorf("new file:\n%s\nwant:\n%s", got, want)
	}

	// Reopening an existing file appends and keeps its mode.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err = OpenAccessLog(path, AccessLogOptions{Now: fixedClock})
	if err != nil {
		t.Fatalf("OpenAccessLog existing: %v", err)
	}
	line(5)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := read(path); !strings.HasSuffix(got, `5 HTTP/1.1" 200 1`+"\n") || !strings.HasPrefix(got, pre+"3") {
		t.Errorf("appended file:\n%s", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("existing file mode changed to %v", fi.Mode().Perm())
	}

	if _, err := OpenAccessLog(filepath.Join(dir, "missing", "access.log"), AccessLogOptions{}); err == nil ||
		!strings.Contains(err.Error(), "missing/access.log") {
		t.Errorf("OpenAccessLog in a missing directory: %v; want an error naming the path", err)
	}
}

func TestAccessLogPeriodicFlush(t *testing.T) {
	var buf syncBuffer
	a := NewAccessLog(&buf, AccessLogOptions{Now: fixedClock, FlushInterval: time.Millisecond})
	defer a.Close()
	a.Line(netip.MustParseAddr("127.0.0.1"), "", "-", 403, -1)
	deadline := time.Now().Add(5 * time.Second)
	for buf.String() == "" {
		if time.Now().After(deadline) {
			t.Fatal("line not flushed by the flusher")
		}
		time.Sleep(time.Millisecond)
	}
}
