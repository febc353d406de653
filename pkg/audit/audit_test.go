package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var testTime = time.Date(2026, 8, 14, 10, 22, 31, 123456789, time.FixedZone("CEST", 2*3600))

func TestAppendLine(t *testing.T) {
	client := netip.MustParseAddr("203.0.113.7")
	peer := netip.MustParseAddr("127.0.0.1")
	for _, tt := range []struct {
		name string
		e    Event
		want string
	}{
		{"login failure behind a proxy",
			Event{Time: testTime, Kind: KindLogin, Status: 401, User: "admin@pve", Client: client, Peer: peer,
				Method: "POST", Path: "/api2/json/access/ticket", Reason: "invalid password"},
			`{"time":"2026-08-14T10:22:31.123+02:00","daemon":"pveproxy","event":"login","result":"fail","status":401,` +
				`"user":"admin@pve","client":"203.0.113.7","peer":"127.0.0.1","method":"POST","path":"/api2/json/access/ticket",` +
				`"reason":"invalid password"}`},
		{"write without peer or reason",
			Event{Time: testTime.UTC(), Kind: KindWrite, Status: 200, User: "admin@pve!ci", Client: peer, Peer: peer,
				Method: "PUT", Path: "/api2/json/access/users/bob@pve"},
			`{"time":"2026-08-14T08:22:31.123Z","daemon":"pveproxy","event":"write","result":"ok","status":200,` +
				`"user":"admin@pve!ci","client":"127.0.0.1","method":"PUT","path":"/api2/json/access/users/bob@pve"}`},
		{"permission denial",
			Event{Time: testTime, Kind: KindPerm, Status: 403, User: "bob@pve", Client: netip.MustParseAddr("2001:db8::7"),
				Method: "GET", Path: "/api2/json/nodes/pve1/status", Reason: "Permission check failed (/nodes/pve1, Sys.Audit)"},
			`{"time":"2026-08-14T10:22:31.123+02:00","daemon":"pveproxy","event":"perm","result":"denied","status":403,` +
				`"user":"bob@pve","client":"2001:db8::7","method":"GET","path":"/api2/json/nodes/pve1/status",` +
				`"reason":"Permission check failed (/nodes/pve1, Sys.Audit)"}`},
		{"auth failure, nothing known",
			Event{Time: testTime, Kind: KindAuth, Status: 401, Method: "GET", Path: "/api2/json/\"x\"\n"},
			`{"time":"2026-08-14T10:22:31.123+02:00","daemon":"pveproxy","event":"auth","result":"fail","status":401,` +
				`"user":"","client":"","method":"GET","path":"/api2/json/\"x\"\n"}`},
		{"write that failed",
			Event{Time: testTime, Kind: KindWrite, Status: 500, User: "root@pam", Client: peer, Method: "DELETE", Path: "/p",
				Reason: "boom"},
			`{"time":"2026-08-14T10:22:31.123+02:00","daemon":"pveproxy","event":"write","result":"fail","status":500,` +
				`"user":"root@pam","client":"127.0.0.1","method":"DELETE","path":"/p","reason":"boom"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendLine(nil, "pveproxy", &tt.e))
			if got != tt.want+"\n" {
				t.Errorf("AppendLine =\n%s\nwant\n%s", got, tt.want)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Errorf("line is not JSON: %v", err)
			}
		})
	}
}

func TestAppendLineCutsReason(t *testing.T) {
	e := Event{Kind: KindAuth, Reason: strings.Repeat("é", MaxReason)}
	var m struct{ Reason string }
	if err := json.Unmarshal(AppendLine(nil, "d", &e), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Reason) > MaxReason || len(m.Reason) < MaxReason-1 || strings.ContainsRune(m.Reason, '\uFFFD') {
		t.Errorf("reason cut to %d bytes %q; want %d whole characters", len(m.Reason), m.Reason, MaxReason/2)
	}
}

// checkString compares appendString with encoding/json on s.
func checkString(t *testing.T, s string) {
	t.Helper()
	var got, want string
	if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
		t.Fatalf("appendString(%q) = %s: not JSON: %v", s, appendString(nil, s), err)
	}
	ref, _ := json.Marshal(s)
	_ = json.Unmarshal(ref, &want)
	if got != want {
		t.Errorf("appendString(%q) decodes to %q; want %q", s, got, want)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "\x00\x01\x1f\x7f", "tab\tnl\ncr\r", "bad\xffutf8\xc3", "ünïcödé €", "\u2028"} {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff")
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}

func newTestLogger(t *testing.T, w io.Writer, opts Options) *Logger {
	t.Helper()
	if opts.Daemon == "" {
		opts.Daemon = "pveproxy"
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return testTime }
	}
	l, err := New(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// syncBuf is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			panic(err)
		}
		out = append(out, m)
	}
	return out
}

func TestLoggerWritesPromptly(t *testing.T) {
	var buf syncBuf
	l := newTestLogger(t, &buf, Options{})
	l.Record(Event{Kind: KindWrite, Status: 200, User: "root@pam", Method: "POST", Path: "/a"})
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.lines()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the line was not written without Close")
		}
		time.Sleep(time.Millisecond)
	}
	if got := buf.lines()[0]; got["time"] != "2026-08-14T10:22:31.123+02:00" || got["path"] != "/a" {
		t.Errorf("line %v; want the recorded event at the logger's clock", got)
	}
}

func TestLoggerCloseWritesEverything(t *testing.T) {
	var buf syncBuf
	l := newTestLogger(t, &buf, Options{QueueLen: 10000})
	const n = 5000
	for i := range n {
		l.Record(Event{Kind: KindWrite, Status: 200 + i%2, Path: "/x"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Record(Event{Kind: KindWrite, Path: "/after-close"})
	if got := len(buf.lines()); got != n {
		t.Errorf("%d lines after Close; want %d", got, n)
	}
	if l.Dropped() != 0 {
		t.Errorf("Dropped() = %d; want 0", l.Dropped())
	}
}

// gateWriter blocks every Write until open is closed.
type gateWriter struct {
	open chan struct{}
	syncBuf
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.syncBuf.Write(p)
}

func TestLoggerDropsWhenFull(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	l := newTestLogger(t, g, Options{QueueLen: 2, MaxWait: time.Millisecond})
	start := time.Now()
	for range 50 {
		l.Record(Event{Kind: KindWrite, Path: "/x"})
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("50 Records against a stuck disk took %v; each must give up after MaxWait", took)
	}
	dropped := l.Dropped()
	if dropped == 0 || dropped > 50 {
		t.Fatalf("Dropped() = %d; want some of the 50", dropped)
	}
	close(g.open)
	l.Record(Event{Kind: KindWrite, Path: "/y"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var written, reported float64
	for _, m := range g.lines() {
		switch m["event"] {
		case KindDropped:
			reported += m["count"].(float64)
		case KindWrite:
			written++
		}
	}
	if uint64(reported) != dropped || uint64(written)+dropped != 51 {
		t.Errorf("%v written, %v reported dropped, Dropped() = %d; want written + dropped = 51, all drops reported",
			written, reported, dropped)
	}
}

// flakyWriter fails while failing is set.
type flakyWriter struct {
	failing bool
	mu      sync.Mutex // guards failing
	syncBuf
}

func (f *flakyWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return 0, errors.New("disk full")
	}
	return f.syncBuf.Write(p)
}

func TestLoggerCountsWriteErrors(t *testing.T) {
	w := &flakyWriter{failing: true}
	l := newTestLogger(t, w, Options{})
	l.Record(Event{Kind: KindWrite, Path: "/lost"})
	deadline := time.Now().Add(5 * time.Second)
	for l.Dropped() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a failed write was not counted as a drop")
		}
		time.Sleep(time.Millisecond)
	}
	w.mu.Lock()
	w.failing = false
	w.mu.Unlock()
	l.Record(Event{Kind: KindWrite, Path: "/kept"})
	l.Close()
	lines := w.lines()
	if len(lines) != 2 || lines[0]["event"] != KindDropped || lines[0]["count"] != 1.0 || lines[1]["path"] != "/kept" {
		t.Errorf("lines %v; want a dropped line with count 1, then /kept", lines)
	}
}

func TestOpenReopen(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{Daemon: "pvedaemon"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != FileMode {
		t.Errorf("new file mode %v; want %v whatever the umask", fi.Mode().Perm(), os.FileMode(FileMode))
	}
	l.Record(Event{Kind: KindWrite, Path: "/before"})
	waitFile(t, path, "/before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Record(Event{Kind: KindWrite, Path: "/after"})
	waitFile(t, path, "/after")
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "/before") {
		t.Errorf("the new file holds a line of the rotated one:\n%s", b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path, sub string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), sub) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no line with %q:\n%s", path, sub, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Record(Event{Kind: KindAuth})
	if err := l.Reopen(); err != nil {
		t.Error(err)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestNote(t *testing.T) {
	SetReason(context.Background(), "nobody listens") // no Note: no effect, no panic
	ctx, n := WithNote(context.Background())
	if n.Reason() != "" {
		t.Errorf("fresh Note has reason %q", n.Reason())
	}
	SetReason(ctx, "first")
	SetReason(ctx, "no such user")
	if n.Reason() != "no such user" {
		t.Errorf("Reason() = %q; want the last one set", n.Reason())
	}
}

func BenchmarkRecord(b *testing.B) {
	l, err := New(io.Discard, Options{Daemon: "pveproxy", QueueLen: 1 << 16})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := Event{Kind: KindWrite, Status: 200, User: "admin@pve", Client: netip.MustParseAddr("192.0.2.1"),
		Method: "POST", Path: "/api2/json/nodes/pve1/qemu/100/status/start"}
	b.ReportAllocs()
	for b.Loop() {
		l.Record(e)
	}
}
