package tasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testNow = 1757362753 // 0x68BF3A41

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.Unix(c.t.Load(), 0) }

// newTestManager returns a Manager with pid 0x1234, pstart 0x5678, a fixed
// clock, and a /proc in which only the processes in alive run.
func newTestManager(t *testing.T, root string, alive map[int]uint64) (*Manager, *fakeClock) {
	t.Helper()
	c := &fakeClock{}
	c.t.Store(testNow)
	m, err := New(Config{Root: root, Node: "pve1", PID: 0x1234, PStart: 0x5678, Now: c.now,
		ProcRunning: func(pid int, pstart uint64) bool { st, ok := alive[pid]; return ok && st == pstart }})
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func wait(t *testing.T, m *Manager, u UPID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Wait(ctx, u.String()); err != nil {
		t.Fatalf("Wait(%s): %v", u, err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTaskOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		fn      Func
		stop    bool
		log     string // expected log file
		status  string
		errType bool
	}{
		{name: "ok", fn: func(ctx context.Context, l *Log) error { l.Print("hello"); return nil },
			log: "hello\nTASK OK\n", status: "OK"},
		{name: "error", fn: func(ctx context.Context, l *Log) error {
			fmt.Fprint(l, "partial")
			return errors.New("disk full\nsecond line\n")
		}, log: "partial\nTASK ERROR: disk full second line\n", status: "disk full second line", errType: true},
		{name: "warnings", fn: func(ctx context.Context, l *Log) error {
			l.Warn("one")
			l.Warnf("two %d", 2)
			l.Printf("done")
			return nil
		}, log: "WARN: one\nWARN: two 2\ndone\nTASK WARNINGS: 2\n", status: "WARNINGS: 2"},
		{name: "error wins over warnings", fn: func(ctx context.Context, l *Log) error {
			l.Warn("w")
			return errors.New("bad")
		}, log: "WARN: w\nTASK ERROR: bad\n", status: "bad", errType: true},
		{name: "stopped", stop: true, fn: func(ctx context.Context, l *Log) error {
			l.Print("waiting")
			<-ctx.Done()
			return ctx.Err()
		}, log: "waiting\nTASK ERROR: received interrupt\n", status: "received interrupt", errType: true},
		{name: "stopped returns cause", stop: true, fn: func(ctx context.Context, l *Log) error {
			<-ctx.Done()
			return context.Cause(ctx)
		}, log: "TASK ERROR: received interrupt\n", status: "received interrupt", errType: true},
		{name: "panic", fn: func(ctx context.Context, l *Log) error { panic("boom") },
			log: "TASK ERROR: panic: boom\n", status: "panic: boom", errType: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			m, _ := newTestManager(t, root, nil)
			started := make(chan struct{})
			fn := func(ctx context.Context, l *Log) error { close(started); return tt.fn(ctx, l) }
			reqCtx, cancelReq := context.WithCancel(context.Background())
			u, err := m.Start(reqCtx, TaskSpec{Type: "qmstart", ID: "100", User: "root@pam"}, fn)
			cancelReq() // the task survives the request
			if err != nil {
				t.Fatal(err)
			}
			want := "UPID:pve1:00001234:00005678:68BF3A41:qmstart:100:root@pam:"
			if u.String() != want {
				t.Fatalf("UPID %s, want %s", u, want)
			}
			<-started
			if tt.stop {
				st, err := m.Status(u.String())
				if err != nil || st.Status != "running" || st.ExitStatus != "" {
					t.Fatalf("Status while running = %+v, %v", st, err)
				}
				if tasks, _, _ := m.List(Filter{Source: "active", Limit: 50}); len(tasks) != 1 || tasks[0].Status != "RUNNING" {
					t.Fatalf("active list while running = %+v", tasks)
				}
				if err := m.Stop(u.String()); err != nil {
					t.Fatal(err)
				}
			}
			wait(t, m, u)
			if got := readFile(t, filepath.Join(root, "1", u.String())); got != tt.log {
				t.Errorf("log = %q, want %q", got, tt.log)
			}
			st, err := m.Status(u.String())
			if err != nil || st.Status != "stopped" || st.ExitStatus != tt.status {
				t.Errorf("Status = %+v, %v; want stopped %q", st, err, tt.status)
			}
			if got, want := readFile(t, filepath.Join(root, "index")), want+" 68BF3A41 "+tt.status+"\n"; got != want {
				t.Errorf("index = %q, want %q", got, want)
			}
			if got, want := readFile(t, filepath.Join(root, "active")), want+" 1 68BF3A41 "+tt.status+"\n"; got != want {
				t.Errorf("active = %q, want %q", got, want)
			}
			if IsErrorStatus(st.ExitStatus) != tt.errType {
				t.Errorf("IsErrorStatus(%q) = %v", st.ExitStatus, !tt.errType)
			}
			if err := m.Stop(u.String()); err != nil { // stopping a finished task is fine
				t.Errorf("Stop after end: %v", err)
			}
		})
	}
}

func TestLogLines(t *testing.T) {
	root := t.TempDir()
	c := &fakeClock{}
	c.t.Store(testNow)
	m, err := New(Config{Root: root, Node: "pve1", PID: 1, PStart: 2, Now: c.now, MaxLineLen: 16,
		ProcRunning: func(int, uint64) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	u, err := m.Start(context.Background(), TaskSpec{Type: "t", User: "root@pam"}, func(ctx context.Context, l *Log) error {
		l.Write([]byte("abc"))
		l.Write([]byte("def\nline2\n"))
		l.Print(strings.Repeat("x", 40))
		l.Print("äöüäöüäöüä") // 20 bytes: split at a rune boundary
		l.Write([]byte(strings.Repeat("y", 20)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, m, u)
	want := "abcdef\nline2\n" + strings.Repeat("x", 16) + "\n" + strings.Repeat("x", 16) + "\n" + strings.Repeat("x", 8) + "\n" +
		"äöüäöüäö\nüä\n" + strings.Repeat("y", 16) + "\nyyyy\nTASK OK\n"
	if got := readFile(t, filepath.Join(root, "1", u.String())); got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestReadLog(t *testing.T) {
	root := t.TempDir()
	m, _ := newTestManager(t, root, nil)
	u, err := m.Start(context.Background(), TaskSpec{Type: "t", User: "root@pam"}, func(ctx context.Context, l *Log) error {
		for i := 1; i <= 4; i++ {
			l.Printf("line %d", i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, m, u)
	lines := func(ns ...int) []LogLine {
		var r []LogLine
		for _, n := range ns {
			s := fmt.Sprintf("line %d", n)
			if n == 5 {
				s = "TASK OK"
			}
			r = append(r, LogLine{N: n, T: s})
		}
		if r == nil {
			r = []LogLine{}
		}
		return r
	}
	tests := []struct {
		start, limit int
		want         []LogLine
	}{
		{0, 50, lines(1, 2, 3, 4, 5)},
		{0, 2, lines(1, 2)},
		{2, 2, lines(3, 4)},
		{4, 10, lines(5)},
		{1, 0, lines(2, 3, 4, 5)}, // limit 0: until the end
		{9, 5, lines()},
	}
	for _, tt := range tests {
		got, total, err := m.ReadLog(u.String(), tt.start, tt.limit)
		if err != nil || total != 5 || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("ReadLog(%d, %d) = %v, %d, %v; want %v, 5", tt.start, tt.limit, got, total, err, tt.want)
		}
	}
	// Empty and missing logs.
	empty := "UPID:pve1:00000001:00000002:68BF3A42:t::root@pam:"
	os.MkdirAll(filepath.Join(root, "2"), 0o755)
	os.WriteFile(filepath.Join(root, "2", empty), nil, 0o644)
	if got, total, _ := m.ReadLog(empty, 0, 50); total != 1 || fmt.Sprint(got) != "[{1 no content}]" {
		t.Errorf("empty log: %v %d", got, total)
	}
	missing := "UPID:pve1:00000001:00000002:68BF3A43:t::root@pam:"
	if got, total, _ := m.ReadLog(missing, 0, 50); total != 1 || fmt.Sprint(got) != "[{1 unable to open file - No such file or directory}]" {
		t.Errorf("missing log: %v %d", got, total)
	}
	if _, err := m.Status(missing); !errors.Is(err, ErrNoSuchTask) {
		t.Errorf("Status(missing) err = %v", err)
	}
	if _, _, err := m.ReadLog("bogus", 0, 50); !errors.Is(err, ErrInvalidUPID) {
		t.Errorf("ReadLog(bogus) err = %v", err)
	}
}

// TestSettleAfterCrash: the active file lists tasks of a dead daemon (other
// pid), of this pid/pstart but not run by this Manager, and of a live other
// process; only the first two are settled.
func TestSettleAfterCrash(t *testing.T) {
	root := t.TempDir()
	dead := "UPID:pve1:00000100:00000200:68BF3A40:vzdump:100:root@pam:"      // crashed mid-task
	deadDone := "UPID:pve1:00000100:00000200:68BF3A3F:qmstart:101:root@pam:" // wrote TASK OK, crashed before the update
	self := "UPID:pve1:00001234:00005678:68BF3A3E:qmstop:102:root@pam:"
	live := "UPID:pve1:00000300:00000400:68BF3A3D:vncproxy:103:root@pam:"
	old := "UPID:pve1:00000100:00000200:68BF3A00:qmstart:104:root@pam: 1 68BF3A05 OK"
	for dir, files := range map[string]map[string]string{
		"0": {dead: "starting backup\n"},
		"F": {deadDone: "ok\nTASK OK\n"},
		"E": {self: ""},
		"D": {live: "proxy\n"},
	} {
		os.MkdirAll(filepath.Join(root, dir), 0o755)
		for name, content := range files {
			os.WriteFile(filepath.Join(root, dir, name), []byte(content), 0o640)
		}
	}
	os.WriteFile(filepath.Join(root, "active"), []byte(live+" 0\n"+dead+" 0\n"+deadDone+" 0\n"+self+" 0\n"+old+"\nnot a task line\n"), 0o644)

	m, c := newTestManager(t, root, map[int]uint64{0x300: 0x400, 0x100: 0x999 /* pid reused */})
	c.t.Store(testNow + 100) // 0x68BF3AA5
	n, err := m.Settle()
	if err != nil || n != 3 {
		t.Fatalf("Settle = %d, %v; want 3", n, err)
	}
	wantIndex := dead + " 68BF3AA5 unexpected status\n" + deadDone + " 68BF3AA5 OK\n" + self + " 68BF3AA5 unexpected status\n"
	if got := readFile(t, filepath.Join(root, "index")); got != wantIndex {
		t.Errorf("index =\n%s\nwant\n%s", got, wantIndex)
	}
	wantActive := live + " 0\n" + dead + " 1 68BF3AA5 unexpected status\n" + deadDone + " 1 68BF3AA5 OK\n" +
		self + " 1 68BF3AA5 unexpected status\n" + old + "\n"
	if got := readFile(t, filepath.Join(root, "active")); got != wantActive {
		t.Errorf("active =\n%s\nwant\n%s", got, wantActive)
	}
	// A second Settle changes nothing.
	if n, err := m.Settle(); err != nil || n != 0 {
		t.Errorf("second Settle = %d, %v", n, err)
	}
	st, err := m.Status(live)
	if err != nil || st.Status != "running" {
		t.Errorf("Status(live) = %+v, %v", st, err)
	}
	if err := m.Stop(live); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Stop(live) = %v, want ErrNotOwner", err)
	}
	st, err = m.Status(dead)
	if err != nil || st.Status != "stopped" || st.ExitStatus != StatusUnexpected {
		t.Errorf("Status(dead) = %+v, %v", st, err)
	}
}

func TestListFilters(t *testing.T) {
	root := t.TempDir()
	u := func(st int, typ, id, user string) string {
		return fmt.Sprintf("UPID:pve1:00000100:00000200:%08X:%s:%s:%s:", st, typ, id, user)
	}
	index1 := u(10, "qmstart", "100", "root@pam") + " 0000000B OK\n"
	index := u(20, "qmstart", "100", "root@pam") + " 00000015 OK\n" +
		u(30, "vzdump", "", "alice@pve") + " 0000001F WARNINGS: 2\n" +
		u(40, "qmstop", "101", "alice@pve!ci") + " 00000029 some error\n" +
		u(50, "qmstart", "101", "bob@pve") + " 00000033 unexpected status\n" +
		"garbage line\n"
	active := u(60, "vncproxy", "100", "root@pam") + " 0\n" +
		u(61, "qmstart", "102", "alice@pve!ci") + " 0\n" +
		u(50, "qmstart", "101", "bob@pve") + " 1 00000033 unexpected status\n"
	os.WriteFile(filepath.Join(root, "index.1"), []byte(index1), 0o644)
	os.WriteFile(filepath.Join(root, "index"), []byte(index), 0o644)
	os.WriteFile(filepath.Join(root, "active"), []byte(active), 0o644)
	m, _ := newTestManager(t, root, nil)

	i64 := func(v int64) *int64 { return &v }
	tests := []struct {
		name  string
		f     Filter
		want  []int // starttimes in order
		total int
	}{
		{"archive default", Filter{Limit: 50}, []int{50, 40, 30, 20, 10}, 5},
		{"all", Filter{Limit: 50, Source: "all"}, []int{60, 61, 50, 40, 30, 20, 10}, 7},
		{"active", Filter{Limit: 50, Source: "active"}, []int{60, 61}, 2},
		{"paging", Filter{Start: 1, Limit: 2, Source: "all"}, []int{61, 50}, 7},
		{"limit 0", Filter{Limit: 0}, nil, 5},
		{"userfilter", Filter{Limit: 50, UserFilter: "ALICE"}, []int{40, 30}, 2},
		{"typefilter", Filter{Limit: 50, TypeFilter: "qmstart"}, []int{50, 20, 10}, 3},
		{"vmid", Filter{Limit: 50, VMID: 101, Source: "all"}, []int{50, 40}, 2},
		{"errors", Filter{Limit: 50, Errors: true, Source: "all"}, []int{60, 61, 50, 40, 30}, 5},
		{"statusfilter", Filter{Limit: 50, StatusFilter: []string{"Error", "unknown"}}, []int{50, 40}, 2},
		{"errors beats statusfilter", Filter{Limit: 50, Errors: true, StatusFilter: []string{"ok"}}, []int{50, 40, 30}, 3},
		{"since/until", Filter{Limit: 50, Since: i64(20), Until: i64(40)}, []int{40, 30, 20}, 3},
		{"visible", Filter{Limit: 50, Source: "all", Visible: func(t Task) bool { return t.User == "alice@pve" }}, []int{40, 30}, 2},
	}
	for _, tt := range tests {
		got, total, err := m.List(tt.f)
		if err != nil {
			t.Fatal(err)
		}
		var starts []int
		for _, task := range got {
			starts = append(starts, int(task.StartTime))
		}
		if fmt.Sprint(starts) != fmt.Sprint(tt.want) || total != tt.total {
			t.Errorf("%s: got %v total %d; want %v total %d", tt.name, starts, total, tt.want, tt.total)
		}
	}
	got, _, _ := m.List(Filter{Limit: 50, Source: "all"})
	// Active entries: RUNNING, token not split (as PVE); archive: split.
	if got[1].Status != "RUNNING" || got[1].User != "alice@pve!ci" || got[1].TokenID != "" {
		t.Errorf("active token entry = %+v", got[1])
	}
	if g := got[3]; g.User != "alice@pve" || g.TokenID != "ci" || g.EndTime != 0x29 || g.Status != "some error" ||
		g.PID != 0x100 || g.PStart != 0x200 || g.Type != "qmstop" || g.ID != "101" || g.Node != "pve1" {
		t.Errorf("archive token entry = %+v", g)
	}
}

func TestIndexRotation(t *testing.T) {
	root := t.TempDir()
	line := "UPID:pve1:00000100:00000200:00000001:qmstart:100:root@pam: 00000002 OK\n"
	big := strings.Repeat(line, 50000/len(line)+1)
	os.WriteFile(filepath.Join(root, "index"), []byte(big), 0o644)
	m, _ := newTestManager(t, root, nil)
	u, err := m.Start(context.Background(), TaskSpec{Type: "t", User: "root@pam"}, func(context.Context, *Log) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	wait(t, m, u)
	if _, err := os.Stat(filepath.Join(root, "index")); !os.IsNotExist(err) {
		t.Errorf("index still exists: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "index.1")); got != big+u.String()+" 68BF3A41 OK\n" {
		t.Errorf("index.1 tail = %q", got[len(got)-100:])
	}
	tasks, total, _ := m.List(Filter{Limit: 1})
	if total != len(big)/len(line)+1 || tasks[0].UPID != u.String() {
		t.Errorf("List after rotation: %v, %d", tasks, total)
	}
}

func TestActiveKeepsRecent(t *testing.T) {
	root := t.TempDir()
	m, _ := newTestManager(t, root, nil)
	for i := range 30 {
		u, err := m.Start(context.Background(), TaskSpec{Type: "t", ID: fmt.Sprint(i), User: "root@pam"}, func(context.Context, *Log) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		wait(t, m, u)
	}
	act, _ := m.Active()
	if len(act) != 25 {
		t.Errorf("active has %d entries, want 25", len(act))
	}
	_, total, _ := m.List(Filter{Limit: 50})
	if total != 30 {
		t.Errorf("index has %d entries, want 30", total)
	}
}

func TestConcurrentStarts(t *testing.T) {
	root := t.TempDir()
	m, _ := newTestManager(t, root, nil) // fixed clock: every start is in the same second
	const n = 40
	release := make(chan struct{})
	var wg sync.WaitGroup
	upids := make([]UPID, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			upids[i], errs[i] = m.Start(context.Background(), TaskSpec{Type: "qmstart", ID: "100", User: "root@pam"},
				func(ctx context.Context, l *Log) error { <-release; l.Print("done"); return nil })
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[upids[i].String()] {
			t.Fatalf("duplicate UPID %s", upids[i])
		}
		seen[upids[i].String()] = true
	}
	if act, _ := m.Active(); len(act) != n {
		t.Errorf("active has %d running entries, want %d", len(act), n)
	}
	close(release)
	for _, u := range upids {
		wait(t, m, u)
	}
	tasks, total, _ := m.List(Filter{Limit: 100})
	if total != n || len(tasks) != n {
		t.Errorf("index has %d entries, want %d", total, n)
	}
	for _, task := range tasks {
		if task.Status != "OK" {
			t.Errorf("task %s: %q", task.UPID, task.Status)
		}
	}
}

func TestLimitsAndClose(t *testing.T) {
	root := t.TempDir()
	c := &fakeClock{}
	c.t.Store(testNow)
	m, err := New(Config{Root: root, Node: "pve1", PID: 1, PStart: 2, Now: c.now, MaxTasks: 2,
		ProcRunning: func(int, uint64) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	block := func(ctx context.Context, l *Log) error { <-ctx.Done(); return ctx.Err() }
	for i := range 2 {
		if _, err := m.Start(context.Background(), TaskSpec{Type: "t", ID: fmt.Sprint(i), User: "root@pam"}, block); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Start(context.Background(), TaskSpec{Type: "t", User: "root@pam"}, block); !errors.Is(err, ErrTooManyTasks) {
		t.Errorf("third Start: %v, want ErrTooManyTasks", err)
	}
	if _, err := m.Start(context.Background(), TaskSpec{Type: "a b", User: "root@pam"}, block); !errors.Is(err, ErrInvalidUPID) {
		t.Errorf("Start with bad type: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v", err)
	}
	if err := m.Close(context.Background()); err != nil { // the stopped tasks end
		t.Errorf("second Close = %v", err)
	}
	if _, err := m.Start(context.Background(), TaskSpec{Type: "t", User: "root@pam"}, block); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	tasks, _, _ := m.List(Filter{Limit: 50})
	if len(tasks) != 2 || tasks[0].Status != StatusInterrupt || tasks[1].Status != StatusInterrupt {
		t.Errorf("tasks after Close: %+v", tasks)
	}
}

func TestSelfStartTime(t *testing.T) {
	st, err := SelfStartTime()
	if err != nil || st == 0 {
		t.Fatalf("SelfStartTime = %d, %v", st, err)
	}
	if !ProcessRunning(os.Getpid(), st) || ProcessRunning(os.Getpid(), st+1) {
		t.Error("ProcessRunning does not match this process")
	}
}

// Seen from another process (pvescheduler reading pvedaemon's tasks), a
// task whose daemon still runs has ended once its log ends with its final
// status; a task still going is running.
func TestStatusFromAnotherProcess(t *testing.T) {
	root := t.TempDir()
	daemon, _ := newTestManager(t, root, nil)
	release := make(chan struct{})
	done, err := daemon.Start(context.Background(), TaskSpec{Type: "vzdump", User: "root@pam"}, func(ctx context.Context, l *Log) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	wait(t, daemon, done)
	going, err := daemon.Start(context.Background(), TaskSpec{Type: "vzdump", User: "root@pam"}, func(ctx context.Context, l *Log) error {
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newTestManager(t, root, map[int]uint64{0x1234: 0x5678}) // the daemon lives
	other.pid, other.pstart = 0x9999, 0x1
	for upid, want := range map[UPID]string{done: "stopped", going: "running"} {
		st, err := other.Status(upid.String())
		if err != nil || st.Status != want {
			t.Errorf("%s: %+v %v, want %s", upid, st, err, want)
		}
	}
	close(release)
	wait(t, daemon, going)
	if st, _ := other.Status(going.String()); st.Status != "stopped" || st.ExitStatus != "OK" {
		t.Errorf("after it ended: %+v", st)
	}
}
