package nodes_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tasks"
)

// total is the "total" of an answer's envelope (0 when absent).
func total(t *testing.T, body string) int {
	t.Helper()
	var env struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return env.Total
}

func TestTaskEndpoints(t *testing.T) {
	e := newNodeEnv(t)
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
		code, data, body := e.Call(user, "GET", "/nodes/n1/tasks", url.Values{"source": {"all"}})
		var list []map[string]any
		_ = json.Unmarshal(data, &list)
		if n := total(t, body); code != 200 || n != want || len(list) != want {
			t.Errorf("%s lists %d tasks (total %d, status %d), want %d", user, len(list), n, code, want)
		}
	}
	// Status and log of alice's finished task.
	code, data, _ := e.Call("alice@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/status", nil)
	var st map[string]any
	_ = json.Unmarshal(data, &st)
	if code != 200 || st["status"] != "stopped" || st["exitstatus"] != "WARNINGS: 1" || st["type"] != "qmstart" {
		t.Errorf("status: %d %v", code, st)
	}
	code, data, body := e.Call("alice@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", url.Values{"start": {"1"}, "limit": {"2"}})
	var lines []struct {
		N int    `json:"n"`
		T string `json:"t"`
	}
	_ = json.Unmarshal(data, &lines)
	if code != 200 || len(lines) != 2 || lines[0].N != 2 || lines[0].T != "line 2" || total(t, body) < 7 {
		t.Errorf("log page: %d %v total %d", code, lines, total(t, body))
	}
	// Someone else's task: bob may not read alice's log, carol may.
	if code, _, _ := e.Call("bob@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", nil); code != 403 {
		t.Errorf("bob reads alice's log: %d, want 403", code)
	}
	if code, _, _ := e.Call("carol@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(done.String())+"/log", nil); code != 200 {
		t.Errorf("carol (Sys.Audit) reads alice's log: %d", code)
	}
	// Stop: not alice (no Sys.Modify), but bob, its owner.
	if code, _, _ := e.Call("alice@pve", "DELETE", "/nodes/n1/tasks/"+url.PathEscape(running.String()), nil); code != 403 {
		t.Errorf("alice stops bob's task: %d, want 403", code)
	}
	if code, _, _ := e.Call("bob@pve", "DELETE", "/nodes/n1/tasks/"+url.PathEscape(running.String()), nil); code != 200 {
		t.Errorf("bob stops his task: %d", code)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.tasks.Wait(wctx, running.String()); err != nil && !errors.Is(err, tasks.ErrInterrupted) {
		t.Fatalf("wait for the stopped task: %v", err)
	}
	_, data, _ = e.Call("bob@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(running.String())+"/status", nil)
	_ = json.Unmarshal(data, &st)
	if st["exitstatus"] != "received interrupt" {
		t.Errorf("stopped task: %v", st)
	}
	if code, _, _ := e.Call("bob@pve", "GET", "/nodes/n1/tasks/UPID:garbage/status", nil); code != 400 {
		t.Errorf("bad upid: %d, want 400", code)
	}
}
