package qemuapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/qemu"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// termProxyReply is termproxy's answer.
type termProxyReply struct {
	User   string `json:"user"`
	Ticket string `json:"ticket"`
	Port   int    `json:"port"`
	UPID   string `json:"upid"`
}

func (e *env) termproxy(vmid string, q url.Values) termProxyReply {
	e.TB.Helper()
	var tr termProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/"+vmid+"/termproxy", q), &tr); err != nil {
		e.TB.Fatal(err)
	}
	return tr
}

// startSeaBIOSConsoleVM creates VM vmid (with the extra creation
// parameters) whose SeaBIOS console is serial0, a socket: SeaBIOS writes
// to COM1 and reads keys from it, its boot menu prompt waits 30 s, and the
// VM starts paused (-S), so that all of its output comes after the
// console's connection.
func (e *env) startSeaBIOSConsoleVM(vmid string, extra url.Values) {
	e.TB.Helper()
	e.createVM(vmid, extra)
	sercon := filepath.Join(e.TB.TempDir(), "sercon-port")
	if err := os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644); err != nil { // COM1, 0x3f8
		e.TB.Fatal(err)
	}
	e.appendConfig(vmid, "serial0: socket\nargs: -S -fw_cfg name=etc/sercon-port,file="+sercon+" -boot splash-time=30000\n")
	if st := e.task("POST", "/nodes/"+node+"/qemu/"+vmid+"/status/start", nil); st != "OK" {
		e.TB.Fatalf("start %s: %s", vmid, st)
	}
}

// appendConfig adds lines to a VM's config file, as root would edit it
// (args and serialN are root@pam's only).
func (e *env) appendConfig(vmid, lines string) {
	e.TB.Helper()
	f, err := os.OpenFile(e.configFile(vmid), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		e.TB.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		e.TB.Fatal(err)
	}
}

// serialChardev returns QEMU's description of the VM's serial0 chardev:
// "disconnected:unix:..." while no client holds the socket.
func (e *env) serialChardev(vmid int) string {
	e.TB.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := qemu.DialQMP(ctx, e.vms.QMPSocket(vmid))
	if err != nil {
		e.TB.Fatal(err)
	}
	defer c.Close()
	var devs []struct {
		Label    string `json:"label"`
		Filename string `json:"filename"`
	}
	if err := c.Execute(ctx, "query-chardev", nil, &devs); err != nil {
		e.TB.Fatal(err)
	}
	for _, d := range devs {
		if d.Label == "serial0" {
			return d.Filename
		}
	}
	e.TB.Fatalf("no chardev serial0: %+v", devs)
	return ""
}

// wsTerm is a termproxy client through the vncwebsocket.
type wsTerm struct {
	t    *testing.T
	c    net.Conn
	rd   *bufio.Reader
	seen []byte // output not consumed by readUntil yet
}

func (w *wsTerm) send(p string) { w.t.Helper(); writeFrame(w.t, w.c, 2, []byte(p)) }

// readUntil reads binary frames until the output not consumed yet
// contains want, within 20 s; it consumes the output up to want's end and
// returns that.
func (w *wsTerm) readUntil(want string) string {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if i := strings.Index(string(w.seen), want); i >= 0 {
			got := string(w.seen[:i+len(want)])
			w.seen = w.seen[i+len(want):]
			return got
		}
		f, err := apitest.ReadWSFrame(w.rd)
		if err != nil || f.Op == 8 {
			w.t.Fatalf("waiting for %q: op %d, %v; got %q", want, f.Op, err, w.seen)
		}
		w.seen = append(w.seen, f.Payload...)
	}
}

// TestTermProxySerial is the serial console with a real QEMU: termproxy,
// vncwebsocket, the ticket line and "OK", then SeaBIOS's serial console
// (sercon) through it both ways: its boot menu prompt out, ESC in, the
// menu out.
func TestTermProxySerial(t *testing.T) {
	e := newEnv(t)
	e.startSeaBIOSConsoleVM("100", nil)
	srv := httptest.NewServer(e.Server)
	defer srv.Close()

	tr := e.termproxy("100", nil)
	if tr.User != "admin@pve" || tr.Port < 5900 || tr.Port > 5999 || !strings.HasPrefix(tr.Ticket, "PVEVNC:") ||
		!strings.HasPrefix(tr.UPID, "UPID:"+node+":") || !strings.Contains(tr.UPID, ":vncproxy:100:admin@pve:") {
		t.Fatalf("termproxy answer: %+v", tr)
	}
	if fn := e.serialChardev(100); !strings.HasPrefix(fn, "disconnected:") {
		t.Errorf("serial0 before the console: %q", fn)
	}
	login := e.Login("admin").Ticket
	if c, _, refusal := wsDial(t, srv.URL, login, "100", tr.Port, tr.Ticket[:len(tr.Ticket)-4]+"AAAA"); c != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("forged ticket: %q", refusal)
	}
	c, rd, refusal := wsDial(t, srv.URL, login, "100", tr.Port, tr.Ticket)
	if c == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	w := &wsTerm{t: t, c: c, rd: rd}
	w.send("admin@pve:" + tr.Ticket + "\n")
	if got := w.readUntil("starting serial terminal on interface serial0\r\n"); got != "OKstarting serial terminal on interface serial0\r\n" {
		t.Errorf("answer %q", got)
	}
	// The console holds the serial socket.
	if fn := e.serialChardev(100); strings.HasPrefix(fn, "disconnected:") {
		t.Errorf("serial0 with the console: %q", fn)
	}

	if st := e.task("POST", "/nodes/"+node+"/qemu/100/status/resume", nil); st != "OK" {
		t.Fatalf("resume: %s", st)
	}
	w.readUntil("SeaBIOS")
	w.readUntil("Press ESC for boot menu")
	w.send("1:100:30:") // resize: nothing to resize, ignored
	w.send("2")         // ping
	w.send("0:1:\x1b")
	w.readUntil("Select boot device:")

	// The client's end ends the task and frees the serial socket.
	writeFrame(t, c, 8, []byte{0x03, 0xE8})
	c.Close()
	if st := e.wait(tr.UPID); st != "OK" {
		t.Errorf("task status %q", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fn := e.serialChardev(100); !strings.HasPrefix(fn, "disconnected:"); fn = e.serialChardev(100) {
		if time.Now().After(deadline) {
			t.Errorf("serial0 after the console: %q", fn)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The VM's end (stop) ends a console.
	tr = e.termproxy("100", url.Values{"serial": {"serial0"}})
	d := dialTerm(t, tr.Port, "admin@pve:"+tr.Ticket+"\n")
	readUntilConn(t, d, "starting serial terminal on interface serial0\r\n")
	if st := e.task("POST", "/nodes/"+node+"/qemu/100/status/stop", nil); st != "OK" {
		t.Fatalf("stop: %s", st)
	}
	if st := e.wait(tr.UPID); st != "OK" {
		t.Errorf("task status after the VM's stop %q", st)
	}
}

// dialTerm connects to a termproxy port as pveproxy's relay does and
// sends line.
func dialTerm(t *testing.T, port int, line string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readUntilConn reads c until it holds want, within 20 s.
func readUntilConn(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, got)
		}
	}
}

// readToEnd reads c until the task closes it, within 20 s.
func readToEnd(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v; got %q", err, b)
	}
	return string(b)
}

// TestTermProxyQmTerminalErrors: qm terminal's checks run once the client
// is in, as in PVE: their message is the terminal's output and the task's
// failure.
func TestTermProxyQmTerminalErrors(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", nil)
	e.appendConfig("100", "serial0: socket\n")
	e.createVM("101", nil)
	e.appendConfig("101", "serial1: /dev/ttyS0\n")
	for _, tt := range []struct {
		name, vmid string
		q          url.Values
		want       string
	}{
		{"stopped", "100", nil, "VM 100 not running"},
		{"no serial", "101", nil, "unable to find a serial interface"},
		{"not configured", "101", url.Values{"serial": {"serial0"}}, "serial interface 'serial0' is not configured"},
		{"not a socket", "101", url.Values{"serial": {"serial1"}}, "wrong serial type on interface 'serial1'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := e.termproxy(tt.vmid, tt.q)
			c := dialTerm(t, tr.Port, "admin@pve:"+tr.Ticket+"\n")
			if got := readToEnd(t, c); got != "OK"+tt.want+"\r\n" {
				t.Errorf("terminal %q", got)
			}
			if st := e.wait(tr.UPID); st != tt.want {
				t.Errorf("task status %q, want %q", st, tt.want)
			}
		})
	}
	// The display on a serial port is the default interface.
	e.appendConfig("101", "vga: serial1\n")
	tr := e.termproxy("101", nil)
	c := dialTerm(t, tr.Port, "admin@pve:"+tr.Ticket+"\n")
	if got, want := readToEnd(t, c), "OKwrong serial type on interface 'serial1'\r\n"; got != want {
		t.Errorf("vga serial1: terminal %q", got)
	}
	_ = e.wait(tr.UPID)
}

// TestTermProxyTickets: the ticket line must carry the ticket termproxy
// answered, for its user; anything else gets no "OK" and fails the task.
func TestTermProxyTickets(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", nil)
	e.appendConfig("100", "serial0: socket\n")
	key, err := ticket.ParsePrivateKey([]byte(e.File(access.AuthKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		line func(tr termProxyReply) string
	}{
		{"forged", func(tr termProxyReply) string { return "admin@pve:" + tr.Ticket[:len(tr.Ticket)-4] + "AAAA\n" }},
		{"another user", func(tr termProxyReply) string { return "alice@pve:" + tr.Ticket + "\n" }},
		{"another valid ticket", func(tr termProxyReply) string {
			// Signed for the same user, VM and port, 5 s earlier: valid,
			// but not the one answered (termproxy's --ticket-fd).
			other, err := ticket.Sign(key, access.PrefixVNC, "", fmt.Sprintf("admin@pve:/vms/100:%d", tr.Port), time.Now().Add(-5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Auth.VerifyVNCTicket(other, "admin@pve", "/vms/100", tr.Port); err != nil {
				t.Fatalf("the other ticket does not verify: %v", err)
			}
			return "admin@pve:" + other + "\n"
		}},
		{"no colon", func(termProxyReply) string { return "garbage\n" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := e.termproxy("100", nil)
			c := dialTerm(t, tr.Port, tt.line(tr))
			if got := readToEnd(t, c); got != "" {
				t.Errorf("answered %q", got)
			}
			if st := e.wait(tr.UPID); !strings.Contains(st, "authentication") {
				t.Errorf("task status %q", st)
			}
		})
	}
}

// TestTermProxyRefusals: the call checks the VM and the login; pvedaemon
// runs no console for another node.
func TestTermProxyRefusals(t *testing.T) {
	e := newEnv(t)
	if r := e.Do("admin", "POST", "/nodes/"+node+"/qemu/101/termproxy", nil); r.Status != 500 || !strings.Contains(r.Message, "does not exist") {
		t.Errorf("missing VM: %d %s", r.Status, r.Message)
	}
	e.createVM("100", nil)
	if r := e.Do("ticket:PVE:x", "POST", "/nodes/"+node+"/qemu/100/termproxy", nil); r.Status != 401 {
		t.Errorf("no login: %d %s", r.Status, r.Message)
	}
	if r := e.Do("admin", "POST", "/nodes/"+node+"/qemu/100/termproxy", url.Values{"serial": {"serial4"}}); r.Status != 400 {
		t.Errorf("serial4: %d %s", r.Status, r.Message)
	}
	if r := e.Do("admin", "POST", "/nodes/n2/qemu/100/termproxy", nil); r.Status != 500 {
		t.Errorf("another node: %d %s", r.Status, r.Message)
	}
}
