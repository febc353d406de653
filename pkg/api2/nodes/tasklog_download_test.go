package nodes_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// logDownload sends GET .../tasks/{upid}/log in format as user, with the
// query q, and returns pvedaemon's answer.
func (e *storEnv) logDownload(user, format, upid string, q url.Values) *httptest.ResponseRecorder {
	e.t.Helper()
	target := "/api2/" + format + "/nodes/n1/tasks/" + url.PathEscape(upid) + "/log?" + q.Encode()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("Cookie", ticket.CookieHeader(e.Login(user).Ticket))
	w := httptest.NewRecorder()
	e.Server.ServeHTTP(w, req)
	return w
}

// runTask runs a finished task of alice's that logs lines and returns its
// UPID.
func runTask(t *testing.T, e *storEnv, typ string, lines int) tasks.UPID {
	t.Helper()
	ctx := context.Background()
	u, err := e.tasks.Start(ctx, tasks.TaskSpec{Type: typ, ID: "100", User: "alice@pve"}, func(ctx context.Context, l *tasks.Log) error {
		for i := range lines {
			l.Printf("line %d of the log", i+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tasks.Wait(ctx, u.String()); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTaskLogDownload: download=1 answers the whole log file, in either
// format, as PVE names it, to the users who may read the paged log.
func TestTaskLogDownload(t *testing.T) {
	e := newNodeEnv(t)
	small := runTask(t, e, "qmstart", 3)
	big := runTask(t, e, "vzdump", 5000) // PVE would gzip it (over 1024 bytes)
	name := func(u tasks.UPID) string {
		return `attachment; filename="task-n1-` + u.Type + "-" + time.Unix(u.StartTime, 0).UTC().Format("2006-01-02T15:04:05Z") + `.log"`
	}
	for _, tt := range []struct {
		name, user, format string
		upid               tasks.UPID
		status             int
	}{
		{"owner, json", "alice@pve", "json", small, 200},
		{"owner, extjs: the file too", "alice@pve", "extjs", small, 200},
		{"large log", "alice@pve", "json", big, 200},
		{"Sys.Audit on the node", "carol@pve", "json", small, 200},
		{"someone else's task", "bob@pve", "json", small, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.logDownload(tt.user, tt.format, tt.upid.String(), url.Values{"download": {"1"}})
			if w.Code != tt.status {
				t.Fatalf("status = %d; want %d (%s)", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 {
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("refusal Content-Type = %q; want the JSON error", ct)
				}
				return
			}
			path, err := e.tasks.LogPath(tt.upid.String())
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			h := w.Header()
			if got := h.Get("Content-Type"); got != "text/plain" {
				t.Errorf("Content-Type = %q; want text/plain", got)
			}
			if got := h.Get("Content-Disposition"); got != name(tt.upid) {
				t.Errorf("Content-Disposition = %q; want %q", got, name(tt.upid))
			}
			if got, wantLen := h.Get("Content-Length"), len(want); got != strconv.Itoa(wantLen) {
				t.Errorf("Content-Length = %q; want %d", got, wantLen)
			}
			if got := h.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding = %q; pvedaemon leaves compression to pveproxy", got)
			}
			if w.Body.String() != string(want) {
				t.Errorf("body: %d bytes, want the log file's %d", w.Body.Len(), len(want))
			}
		})
	}
}

// TestTaskLogDownloadErrors: PVE's refusals and messages.
func TestTaskLogDownloadErrors(t *testing.T) {
	e := newNodeEnv(t)
	u := runTask(t, e, "qmstart", 2)
	// A valid UPID without a log file.
	gone := tasks.UPID{Node: "n1", PID: 1, PStart: 1, StartTime: 1700000000, Type: "qmstart", ID: "100", User: "alice@pve"}
	gonePath, err := e.tasks.LogPath(gone.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		upid   string
		q      url.Values
		status int
		want   string // in the body
	}{
		{"with start", u.String(), url.Values{"download": {"1"}, "start": {"0"}}, 500,
			`"message":"'download' cannot be used together with 'start' or 'limit' parameters\n"`},
		{"with limit", u.String(), url.Values{"download": {"1"}, "limit": {"10"}}, 500,
			`'download' cannot be used together`},
		{"no log file", gone.String(), url.Values{"download": {"1"}}, 500,
			`"message":"Could not open file '` + gonePath + `' - No such file or directory\n"`},
		{"bad upid", "UPID:garbage", url.Values{"download": {"1"}}, 400, `unable to parse worker upid`},
		{"download=0 reads a page", u.String(), url.Values{"download": {"0"}, "limit": {"1"}}, 200,
			`"data":[{"n":1,"t":"line 1 of the log"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := e.logDownload("alice@pve", "json", tt.upid, tt.q)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("answer %d %s; want %d with %s", w.Code, w.Body, tt.status, tt.want)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q; want JSON", ct)
			}
		})
	}
}

// TestTaskLogDownloadRunning: a running task's log downloads as far as it
// was written.
func TestTaskLogDownloadRunning(t *testing.T) {
	e := newNodeEnv(t)
	ctx := context.Background()
	logged, release := make(chan struct{}), make(chan struct{})
	u, err := e.tasks.Start(ctx, tasks.TaskSpec{Type: "vzdump", ID: "100", User: "alice@pve"}, func(ctx context.Context, l *tasks.Log) error {
		l.Printf("started")
		close(logged)
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(release)
		_ = e.tasks.Wait(ctx, u.String())
	}()
	<-logged
	w := e.logDownload("alice@pve", "json", u.String(), url.Values{"download": {"1"}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "started\n") || strings.Contains(w.Body.String(), "TASK OK") {
		t.Errorf("running task's log: %d %q", w.Code, w.Body)
	}
}
