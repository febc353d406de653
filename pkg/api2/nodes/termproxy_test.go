package nodes_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/api2/nodes"
	"github.com/pvenode/pvenode/pkg/tasks"
)

// termEnv serves the node methods with the node shell. The shell is
// /bin/sh for every user (Deps.Shell): login needs root and a terminal
// login on the test machine.
type termEnv struct {
	*apitest.Client
	tasks *tasks.Manager
	url   string // of the HTTP server, for the WebSocket
}

func newTermEnv(t *testing.T) *termEnv {
	t.Helper()
	dir := t.TempDir()
	env := apitest.New(t, apitest.Setup{Dir: dir, Files: map[string]string{
		"user.cfg": "user:alice@pve:1:0:::::\nuser:carol@pve:1:0:::::\n" +
			"acl:1:/nodes:alice@pve:PVESysAdmin:\n" +
			"acl:1:/nodes/n1:carol@pve:PVEAuditor:\n",
	}})
	m, err := tasks.New(tasks.Config{Root: filepath.Join(dir, "tasks"), Node: apitest.Node, Logger: env.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c := env.Serve(api.NewRegistry(nodes.Methods(nodes.Deps{Privs: env.Auth, Tasks: m, VNC: env.Auth,
		Shell: []string{"/bin/sh"}})))
	srv := httptest.NewServer(c.Server)
	t.Cleanup(srv.Close)
	return &termEnv{Client: c, tasks: m, url: srv.URL}
}

// termReply is termproxy's answer.
type termReply struct {
	User   string `json:"user"`
	Ticket string `json:"ticket"`
	Port   int    `json:"port"`
	UPID   string `json:"upid"`
}

func (e *termEnv) termproxy(t *testing.T, user string) termReply {
	t.Helper()
	var tr termReply
	if err := json.Unmarshal(e.Must(user, "POST", "/nodes/n1/termproxy", nil), &tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// wait returns the task's exit status once it has ended.
func (e *termEnv) wait(t *testing.T, upid string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = e.tasks.Wait(ctx, upid)
	var st struct {
		Status     string `json:"status"`
		ExitStatus string `json:"exitstatus"`
	}
	r := e.Do("alice@pve", "GET", "/nodes/n1/tasks/"+url.PathEscape(upid)+"/status", nil)
	r.Decode(t, &st)
	if st.Status != "stopped" {
		t.Fatalf("task %s still %s", upid, st.Status)
	}
	return st.ExitStatus
}

// wsConn is a WebSocket client of the node's vncwebsocket.
type wsConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

// openShell opens tr's shell as user: the WebSocket, then termproxy's
// ticket line, answered "OK".
func (e *termEnv) openShell(t *testing.T, user string, tr termReply) *wsConn {
	t.Helper()
	w, refusal := e.dialShell(t, user, tr.Port, tr.Ticket)
	if w == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	w.send(user + ":" + tr.Ticket + "\n")
	w.readUntil("OK")
	return w
}

// dialShell opens the vncwebsocket of port as user with vncticket; it
// returns nil and the refusal's status line and body unless upgraded.
func (e *termEnv) dialShell(t *testing.T, user string, port int, vncticket string) (*wsConn, string) {
	t.Helper()
	u, _ := url.Parse(e.url)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"port": {strconv.Itoa(port)}, "vncticket": {vncticket}}
	rd, _, refusal := apitest.WSHandshake(t, c, u.Host, "/api2/json/nodes/n1/vncwebsocket?"+q.Encode(), e.Login(user).Ticket)
	if rd == nil {
		c.Close()
		return nil, refusal
	}
	t.Cleanup(func() { c.Close() })
	return &wsConn{t: t, c: c, rd: rd}, ""
}

// send writes p as one masked binary frame.
func (w *wsConn) send(p string) {
	w.t.Helper()
	if _, err := w.c.Write(apitest.WSClientFrame(2, []byte(p))); err != nil {
		w.t.Fatal(err)
	}
}

// input sends s as termproxy's data message.
func (w *wsConn) input(s string) { w.t.Helper(); w.send(fmt.Sprintf("0:%d:%s", len(s), s)) }

// frame reads one server frame: its opcode and payload; err at the end
// of the connection.
func (w *wsConn) frame() (op byte, p []byte, err error) {
	f, err := apitest.ReadWSFrame(w.rd)
	return f.Op, f.Payload, err
}

// readUntil reads binary frames until their bytes (from the last call on)
// contain want; it fails the test after 10 s or at a close.
func (w *wsConn) readUntil(want string) string {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		op, p, err := w.frame()
		if err != nil || op == 8 {
			w.t.Fatalf("waiting for %q: op %d, %v; got %q", want, op, err, got.String())
		}
		got.Write(p)
	}
	return got.String()
}

// TestTermProxyShell is the node shell's path: termproxy, vncwebsocket,
// the ticket line, "OK", then input, resize and output through the PTY.
func TestTermProxyShell(t *testing.T) {
	e := newTermEnv(t)
	tr := e.termproxy(t, "alice@pve")
	if tr.User != "alice@pve" || tr.Port < 5900 || tr.Port > 5999 || !strings.HasPrefix(tr.Ticket, "PVEVNC:") ||
		!strings.HasPrefix(tr.UPID, "UPID:n1:") || !strings.Contains(tr.UPID, ":vncshell::alice@pve:") {
		t.Fatalf("termproxy answer: %+v", tr)
	}
	// The vncwebsocket refuses another port's ticket and a forged one.
	if w, refusal := e.dialShell(t, "alice@pve", tr.Port+1, tr.Ticket); w != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("another port: %q", refusal)
	}
	if w, refusal := e.dialShell(t, "alice@pve", tr.Port, tr.Ticket[:len(tr.Ticket)-4]+"AAAA"); w != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("forged ticket: %q", refusal)
	}
	w := e.openShell(t, "alice@pve", tr)

	// The typed line echoes h''i; only the command's output is "hi".
	w.input("echo h''i\n")
	w.readUntil("hi\r\n")
	w.send("2") // ping: ignored
	w.send("1:100:30:")
	w.input("stty size\n")
	w.readUntil("30 100")
	// A message split over frames, and two in one frame.
	w.send("0:13:echo ")
	w.send("sp''lit\n1:81:21:")
	w.readUntil("split\r\n")
	w.input("stty size\n")
	w.readUntil("21 81")

	// The shell's end ends the connection and the task.
	w.input("exit\n")
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		op, _, err := w.frame()
		if err != nil || op == 8 {
			break
		}
	}
	if st := e.wait(t, tr.UPID); st != "OK" {
		t.Errorf("task status %q", st)
	}
}

// TestTermProxyCloseEndsShell: the client's end ends the shell and the
// task.
func TestTermProxyCloseEndsShell(t *testing.T) {
	e := newTermEnv(t)
	tr := e.termproxy(t, "alice@pve")
	w := e.openShell(t, "alice@pve", tr)
	w.input("echo $$ > /dev/null\n")
	w.c.Close()
	if st := e.wait(t, tr.UPID); st != "OK" {
		t.Errorf("task status %q", st)
	}
}

// TestTermProxyBadTicketLine: a ticket line that does not verify (forged,
// another user's name) gets no "OK": the connection ends and the task
// fails.
func TestTermProxyBadTicketLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		line func(tk string) string
	}{
		{"forged", func(tk string) string { return "alice@pve:" + tk[:len(tk)-4] + "AAAA\n" }},
		{"another user", func(tk string) string { return "carol@pve:" + tk + "\n" }},
		{"no colon", func(string) string { return "garbage\n" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTermEnv(t)
			tr := e.termproxy(t, "alice@pve")
			w, refusal := e.dialShell(t, "alice@pve", tr.Port, tr.Ticket)
			if w == nil {
				t.Fatalf("upgrade refused: %s", refusal)
			}
			w.send(tt.line(tr.Ticket))
			_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var got []byte
			for {
				op, p, err := w.frame()
				if err != nil || op == 8 {
					break
				}
				got = append(got, p...)
			}
			if len(got) != 0 {
				t.Errorf("answered %q, want the connection closed", got)
			}
			if st := e.wait(t, tr.UPID); st == "OK" || !strings.Contains(st, "authentication") {
				t.Errorf("task status %q", st)
			}
		})
	}
}

// TestTermProxyRefusals: Sys.Console on the node is needed, and the
// shell of another node is not run here.
func TestTermProxyRefusals(t *testing.T) {
	e := newTermEnv(t)
	if r := e.Do("carol@pve", "POST", "/nodes/n1/termproxy", nil); r.Status != http.StatusForbidden {
		t.Errorf("carol (PVEAuditor) termproxy: %d %s", r.Status, r.Message)
	}
	if r := e.Do("carol@pve", "GET", "/nodes/n1/vncwebsocket", url.Values{"port": {"5900"}, "vncticket": {"x"}}); r.Status != http.StatusForbidden {
		t.Errorf("carol vncwebsocket: %d %s", r.Status, r.Message)
	}
	// pvedaemon runs no call for another node (pveproxy sends it there:
	// e2e TestConsolesOfOtherNode)
	if r := e.Do("alice@pve", "POST", "/nodes/n2/termproxy", nil); r.Status != http.StatusInternalServerError || r.Message != "proxy not allowed\n" {
		t.Errorf("another node: %d %s", r.Status, r.Message)
	}
	// Without the upgrade, vncwebsocket answers {port} for a valid ticket
	// only.
	if r := e.Do("alice@pve", "GET", "/nodes/n1/vncwebsocket", url.Values{"port": {"5900"}, "vncticket": {"x"}}); r.Status != http.StatusUnauthorized {
		t.Errorf("bad ticket without upgrade: %d %s", r.Status, r.Message)
	}
	tr := e.termproxy(t, "alice@pve")
	r := e.Do("alice@pve", "GET", "/nodes/n1/vncwebsocket", url.Values{"port": {strconv.Itoa(tr.Port)}, "vncticket": {tr.Ticket}})
	if r.Status != http.StatusOK || string(r.Data) != `{"port":"`+strconv.Itoa(tr.Port)+`"}` {
		t.Errorf("vncwebsocket without upgrade: %d %s", r.Status, r.Body)
	}
	// A connection that ends before its ticket line ends the task.
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.Port)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if st := e.wait(t, tr.UPID); !strings.Contains(st, "connection closed before authentication") {
		t.Errorf("task status %q", st)
	}
}

// TestShellCommand: PVE's commands (Deps.Shell unset).
func TestShellCommand(t *testing.T) {
	e := apitest.New(t, apitest.Setup{Files: map[string]string{"user.cfg": apitest.RootUser}})
	m, err := tasks.New(tasks.Config{Root: filepath.Join(e.Dir, "tasks"), Node: apitest.Node, Logger: e.Log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	c := e.Serve(api.NewRegistry(nodes.Methods(nodes.Deps{Privs: e.Auth, Tasks: m, VNC: e.Auth})))
	for _, cmd := range []string{"upgrade", "ceph_install"} {
		if r := c.Do("root@pam", "POST", "/nodes/n1/termproxy", url.Values{"cmd": {cmd}}); r.Status != http.StatusNotImplemented {
			t.Errorf("cmd %s: %d %s", cmd, r.Status, r.Message)
		}
	}
}

// TestTermProxyCloseWhileBlocked: the client's end ends the shell even
// while the PTY takes no input (its program does not read and the
// terminal's buffer is full).
func TestTermProxyCloseWhileBlocked(t *testing.T) {
	e := newTermEnv(t)
	tr := e.termproxy(t, "alice@pve")
	w := e.openShell(t, "alice@pve", tr)
	// Raw (a full terminal blocks its writer instead of dropping input)
	// and without echo (nothing to write to the client).
	w.input("stty raw -echo; echo RE''ADY; sleep 60\n")
	w.readUntil("READY")
	// 120 KB: more than the terminal holds (its 4 KiB and the PTY's 64
	// KiB); the rest waits in the connections' buffers.
	msg := "0:1000:" + strings.Repeat(strings.Repeat("x", 99)+"\n", 10)
	frame := []byte{0x82, 0x80 | 126, byte(len(msg) >> 8), byte(len(msg)), 0, 0, 0, 0}
	frame = append(frame, msg...) // mask 0: the payload as is
	for range 120 {
		_ = w.c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := w.c.Write(frame); err != nil {
			break
		}
	}
	w.c.Close()
	start := time.Now()
	if st := e.wait(t, tr.UPID); st != "OK" {
		t.Errorf("task status %q", st)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the task ended %v after the client", d)
	}
}
