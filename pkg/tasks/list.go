package tasks

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Task is one entry of the task list (GET /nodes/{node}/tasks), with PVE's
// field names and JSON types.
type Task struct {
	UPID      string `json:"upid"`
	Node      string `json:"node"`
	PID       int    `json:"pid"`
	PStart    uint64 `json:"pstart"`
	StartTime int64  `json:"starttime"`
	Type      string `json:"type"`
	ID        string `json:"id"`
	User      string `json:"user"`
	TokenID   string `json:"tokenid,omitempty"`
	EndTime   int64  `json:"endtime,omitempty"`
	Status    string `json:"status,omitempty"`
}

func (e entry) task() Task {
	return Task{UPID: e.raw, Node: e.u.Node, PID: e.u.PID, PStart: e.u.PStart, StartTime: e.u.StartTime,
		Type: e.u.Type, ID: e.u.ID, User: e.u.User, EndTime: e.endtime, Status: e.status}
}

// Token ids as PVE::AccessControl::pve_verify_tokenid accepts them:
// <userid>!<tokenname>.
var tokenRe = regexp.MustCompile(`^(.+@[A-Za-z][A-Za-z0-9\.\-_]+)!([A-Za-z][A-Za-z0-9\.\-_]+)$`)

// splitToken turns a token task's user "user@realm!name" into user
// "user@realm" and tokenid "name" (PVE's convert_token_task).
func (t *Task) splitToken() {
	if m := tokenRe.FindStringSubmatch(t.User); m != nil {
		t.User, t.TokenID = m[1], m[2]
	}
}

// Filter holds the parameters of GET /nodes/{node}/tasks. The zero Filter is
// not the API default: the API's defaults are Limit 50 and Source
// "archive", and Limit <= 0 returns no entries (only the total), as in PVE.
type Filter struct {
	Start      int
	Limit      int
	UserFilter string // case-insensitive substring of the user (token tasks: of the owner)
	TypeFilter string // exact type
	VMID       int    // 0: any; else the task id must equal it
	Errors     bool   // drop tasks with status OK (then StatusFilter is ignored)
	Source     string // "archive" (or ""), "active" or "all"
	Since      *int64 // starttime >= Since
	Until      *int64 // starttime <= Until
	// StatusFilter lists the wanted status types (ok, warning, error,
	// unknown; see StatusType); nil or empty: all.
	StatusFilter []string
	// Visible is the permission check (own tasks, or Sys.Audit on the node);
	// nil: every task is visible. It sees the task with the token split off.
	Visible func(Task) bool
}

// List returns the tasks matching f, in PVE's order: with source active or
// all, first the entries of the active file that are not yet archived (the
// running ones, status "RUNNING"), in file order; then, unless source is
// active, the index and index.1, newest line first. total counts every
// match before Start and Limit are applied.
//
// Entries from the active file keep the token in user and have no tokenid:
// PVE converts token tasks only for archive entries.
func (m *Manager) List(f Filter) (tasks []Task, total int, err error) {
	source := f.Source
	if source == "" {
		source = "archive"
	}
	want := map[string]bool{"ok": true, "warning": true, "error": true, "unknown": true}
	if f.Errors {
		want["ok"] = false
	} else if len(f.StatusFilter) > 0 {
		want = map[string]bool{}
		for _, s := range f.StatusFilter {
			want[strings.ToLower(s)] = true
		}
	}
	userFilter := strings.ToLower(f.UserFilter)
	vmid := ""
	if f.VMID != 0 {
		vmid = strconv.Itoa(f.VMID)
	}
	limit := f.Limit
	count := 0
	tasks = []Task{}
	// skip is PVE's filter_task: true when the task is not listed.
	skip := func(t Task) bool {
		if userFilter != "" && !strings.Contains(strings.ToLower(t.User), userFilter) {
			return true
		}
		if f.Visible != nil && !f.Visible(t) {
			return true
		}
		if f.TypeFilter != "" && t.Type != f.TypeFilter {
			return true
		}
		if vmid != "" && t.ID != vmid {
			return true
		}
		if f.Since != nil && t.StartTime < *f.Since {
			return true
		}
		if f.Until != nil && t.StartTime > *f.Until {
			return true
		}
		if !want[StatusType(t.Status)] {
			return true
		}
		count++
		if count <= f.Start {
			return true
		}
		return limit <= 0
	}

	if source == "active" || source == "all" {
		data, err := os.ReadFile(filepath.Join(m.root, activeName))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, err
		}
		for _, e := range parseActive(data) {
			if e.saved {
				continue
			}
			t := e.task()
			if !skip(t) {
				if t.Status == "" {
					t.Status = StatusRunning
				}
				tasks = append(tasks, t)
				limit--
			}
		}
	}
	if source != "active" {
		for _, name := range []string{indexName, indexName + ".1"} {
			data, err := os.ReadFile(filepath.Join(m.root, name))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, 0, err
			}
			lines := splitLines(data)
			for i := len(lines) - 1; i >= 0; i-- {
				e, ok := parseIndexLine(lines[i])
				if !ok {
					continue
				}
				t := e.task()
				t.splitToken()
				if !skip(t) {
					tasks = append(tasks, t)
					limit--
				}
			}
		}
	}
	return tasks, count, nil
}

// Active returns the entries of the active file as they are (running tasks
// and the most recent finished ones), e.g. for the cluster task list.
func (m *Manager) Active() ([]Task, error) {
	data, err := os.ReadFile(filepath.Join(m.root, activeName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	res := []Task{}
	for _, e := range parseActive(data) {
		res = append(res, e.task())
	}
	return res, nil
}

// TaskStatus is the answer of GET /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID       string `json:"upid"`
	Node       string `json:"node"`
	PID        int    `json:"pid"`
	PStart     uint64 `json:"pstart"`
	StartTime  int64  `json:"starttime"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	User       string `json:"user"`
	TokenID    string `json:"tokenid,omitempty"`
	Status     string `json:"status"` // "running" or "stopped"
	ExitStatus string `json:"exitstatus,omitempty"`
}

// Status answers whether a task runs and, once stopped, its exit status.
// Errors: ErrInvalidUPID (wrapped), ErrNoSuchTask when it has no log file.
func (m *Manager) Status(upid string) (TaskStatus, error) {
	u, err := Parse(upid)
	if err != nil {
		return TaskStatus{}, err
	}
	if _, err := os.Stat(logPath(m.root, upid)); err != nil {
		return TaskStatus{}, ErrNoSuchTask
	}
	t := Task{User: u.User}
	t.splitToken()
	st := TaskStatus{UPID: upid, Node: u.Node, PID: u.PID, PStart: u.PStart, StartTime: u.StartTime,
		Type: u.Type, ID: u.ID, User: t.User, TokenID: t.TokenID, Status: "running"}
	if !m.isRunning(u) {
		st.Status = "stopped"
		st.ExitStatus = m.readStatus(upid)
	}
	return st, nil
}

// LogLine is one line of a task log: n counts from 1.
type LogLine struct {
	N int    `json:"n"`
	T string `json:"t"`
}

// ReadLog returns the lines start+1 ... start+limit of the task's log (all
// from start on when limit is 0) and the total number of lines, like PVE's
// dump_logfile: an empty log gives the single line {1, "no content"} and a
// log that cannot be opened {1, "unable to open file - <reason>"}, total 1.
func (m *Manager) ReadLog(upid string, start, limit int) (lines []LogLine, total int, err error) {
	if _, err := Parse(upid); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(logPath(m.root, upid))
	if err != nil {
		return []LogLine{{N: 1, T: "unable to open file - " + strerror(err)}}, 1, nil
	}
	defer f.Close()
	all := limit == 0
	lines = []LogLine{}
	count := 0
	err = readerLines(f, func(line string) bool {
		count++
		if count <= start {
			return true
		}
		if !all {
			if limit <= 0 {
				return true
			}
			limit--
		}
		lines = append(lines, LogLine{N: count, T: line})
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	if count == 0 {
		count = 1
		lines = append(lines, LogLine{N: 1, T: "no content"})
	}
	return lines, count, nil
}

// LogPath is the file of a task's log below the Manager's root, e.g. for
// the log download.
func (m *Manager) LogPath(upid string) (string, error) {
	if _, err := Parse(upid); err != nil {
		return "", err
	}
	return logPath(m.root, upid), nil
}
