package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tasks"
	"github.com/pvenode/pvenode/pkg/ticket"
)

const pw = "task test password"

// taskEnv is pvedaemon's API server over a real Authenticator, a config
// root with three users and a real task manager.
type taskEnv struct {
	t       *testing.T
	srv     *api.Server
	auth    *access.Authenticator
	tasks   *tasks.Manager
	tickets map[string]string
}

func newTaskEnv(t *testing.T) *taskEnv {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"domains.cfg": "pve: pve\n\tcomment x\n\n",
		"user.cfg": "user:alice@pve:1:0:::::\nuser:bob@pve:1:0:::::\nuser:carol@pve:1:0:::::\n" +
			"acl:1:/nodes/n1:carol@pve:PVEAuditor:\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := access.NewAuthenticator(access.Deps{FS: root, Clock: time.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := auth.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := access.SetPassword(ctx, root, u, pw); err != nil {
			t.Fatal(err)
		}
	}
	m, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: "n1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	srv, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(nodes.Methods(nodes.Deps{Privs: auth, Tasks: m})),
		Auth:     auth, Mode: api.ModeDaemon, NodeName: "n1", Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &taskEnv{t: t, srv: srv, auth: auth, tasks: m, tickets: map[string]string{}}
}

func (e *taskEnv) call(user, method, path string, q url.Values) (int, json.RawMessage, int) {
	e.t.Helper()
	tk, ok := e.tickets[user]
	if !ok {
		res, err := e.auth.Login(context.Background(), strings.TrimSuffix(user, "@pve"), pw, "pve", "127.0.0.1")
		if err != nil {
			e.t.Fatal(err)
		}
		tk = res.Ticket
		e.tickets[user] = tk
	}
	target := "/api2/json" + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "127.0.0.1:1"
	req.Header.Set("Cookie", ticket.CookieHeader(tk))
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	var env struct {
		Data  json.RawMessage `json:"data"`
		Total int             `json:"total"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	return w.Code, env.Data, env.Total
}

func TestTaskEndpoints(t *testing.T) {
	e := newTaskEnv(t)
	ctx := context.Background()
	done, err := e.tasks.Start(ctx, tasks.TaskSpec{Type: "qmstart", ID: "100", User: "alice@pve"}, func(ctx context.Context, l *tasks.Log) error {
		for i := range 5 {
			l.Printf("line %d", i+1)
		}
		l.Warn("disk almost full")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tasks.Wait(ctx, done.String()); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	running, err := e.tasks.Start(ctx, tasks.TaskSpec{Type: "vzdump", ID: "101", User: "bob@pve"}, func(ctx context.Context, l *tasks.Log) error {
		l.Printf("waiting")
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	if !strings.HasPrefix(done.String(), "UPID:n1:") {
		t.Fatalf("UPID %s", done)
	}

	// List: alice sees her task, carol (Sys.Audit on the node) both.
	for user, want := range map[string]int{"alice@pve": 1, "bob@pve": 1, "carol@pve": 2} {
		code, data, total := e.call(user, "GET", "/nodes/n1/tasks", url.Values{"source": {"all"}})
		var list []map[string]any
		_ = json.Unmarshal(data, &list)
		if code != 200 || total != want || len(list) != want {
			t.Errorf("%s lists %d tasks (total %d, status %d), want %d", user, len(list), total, code, want)
		}
	}
	// Status and log of alice's finished task.
	code, data, _ := e.call("alice@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/status", nil)
	var st map[string]any
	_ = json.Unmarshal(data, &st)
	if code != 200 || st["status"] != "stopped" || st["exitstatus"] != "WARNINGS: 1" || st["type"] != "qmstart" {
		t.Errorf("status: %d %v", code, st)
	}
	code, data, total := e.call("alice@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", url.Values{"start": {"1"}, "limit": {"2"}})
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	_ = json.Unmarshal(data, &lines)
	if code != 200 || len(lines) != 2 || lines[0].N != 2 || lines[0].T != "line 2" || total < 7 {
		t.Errorf("log page: %d %v total %d", code, lines, total)
	}
	// Someone else's task: bob may not read alice's log, carol may.
	if code, _, _ := e.call("bob@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", nil); code != 403 {
		t.Errorf("bob reads alice's log: %d, want 403", code)
	}
	if code, _, _ := e.call("carol@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", nil); code != 200 {
		t.Errorf("carol (Sys.Audit) reads alice's log: %d", code)
	}
	// Stop: not alice (no Sys.Modify), but bob, its owner.
	if code, _, _ := e.call("alice@pve", "DELETE", "/nodes/n1/tasks/"+url.PathEscape(running.String()), nil); code != 403 {
		t.Errorf("alice stops bob's task: %d, want 403", code)
	}
	if code, _, _ := e.call("bob@pve", "DELETE", "/nodes/n1/tasks/"+url.PathEscape(running.String()), nil); code != 200 {
		t.Errorf("bob stops his task: %d", code)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.tasks.Wait(wctx, running.String()); err != nil && !errors.Is(err, tasks.ErrInterrupted) {
		t.Fatalf("wait for the stopped task: %v", err)
	}
	_, data, _ = e.call("bob@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(running.String())+"/status", nil)
	_ = json.Unmarshal(data, &st)
	if st["exitstatus"] != "received interrupt" {
		t.Errorf("stopped task: %v", st)
	}
	if code, _, _ := e.call("bob@pve", "GET", "/nodes/n1/tasks/UPID:garbage/status", nil); code != 400 {
		t.Errorf("bad upid: %d, want 400", code)
	}
}
