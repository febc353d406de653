package qemuapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api/apitest"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// vncProxyReply is vncproxy's answer.
type vncProxyReply struct {
	User     string `json:"user"`
	Ticket   string `json:"ticket"`
	Port     int    `json:"port"`
	UPID     string `json:"upid"`
	Cert     string `json:"cert"`
	Password string `json:"password"`
}

// wsDial opens the vncwebsocket of vmid on srv as user's ticket and
// returns the connection after a 101, or the status line and body of a
// refusal.
func wsDial(t *testing.T, srvURL, loginTicket, vmid string, port int, vncticket string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	u, _ := url.Parse(srvURL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"port": {strconv.Itoa(port)}, "vncticket": {vncticket}}
	rd, hdr, refusal := apitest.WSHandshake(t, c, u.Host, "/api2/json/nodes/"+node+"/qemu/"+vmid+"/vncwebsocket?"+q.Encode(), loginTicket)
	if rd == nil {
		c.Close()
		return nil, nil, refusal
	}
	if got := hdr.Get("Sec-WebSocket-Protocol"); got != "binary" {
		t.Errorf("Sec-WebSocket-Protocol %q, want the client's echoed", got)
	}
	t.Cleanup(func() { c.Close() })
	return c, rd, ""
}

// readFrame reads one server frame.
func readFrame(t *testing.T, rd *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	f, err := apitest.ReadWSFrame(rd)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if !f.Final || f.Masked {
		t.Fatalf("frame opcode %d: not final or masked", f.Op)
	}
	return f.Op, f.Payload
}

// writeFrame writes one masked client frame.
func writeFrame(t *testing.T, c net.Conn, op byte, p []byte) {
	t.Helper()
	if _, err := c.Write(apitest.WSClientFrame(op, p)); err != nil {
		t.Fatal(err)
	}
}

// TestVNCWebSocket is the console path with a real QEMU: vncproxy, then
// vncwebsocket upgraded, and QEMU's RFB greeting arrives through it.
func TestVNCWebSocket(t *testing.T) {
	e := newEnv(t)
	e.createVM("100", url.Values{"vga": {"std"}}) // a display, so QEMU serves VNC
	if st := e.task("POST", "/nodes/"+node+"/qemu/100/status/start", nil); st != "OK" {
		t.Fatalf("start: %s", st)
	}
	srv := httptest.NewServer(e.Server)
	defer srv.Close()

	var vp vncProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	if vp.User != "admin@pve" || vp.Port < 5900 || vp.Port > 5999 || !strings.HasPrefix(vp.UPID, "UPID:"+node+":") ||
		!strings.Contains(vp.UPID, ":vncproxy:100:admin@pve:") || len(vp.Password) != 8 ||
		!strings.HasPrefix(vp.Ticket, vp.Password+":PVEVNC:") {
		t.Fatalf("vncproxy answer: %+v", vp)
	}
	login := e.Login("admin").Ticket

	// Refused: a forged ticket, another port's, another VM's, another
	// user's. None of them takes the task's one connection.
	forged := vp.Ticket[:len(vp.Ticket)-4] + "AAAA"
	for _, c := range []struct {
		name, vmid, ticket string
		port               int
	}{
		{"forged", "100", forged, vp.Port},
		{"port", "100", vp.Ticket, vp.Port + 1},
		{"garbage", "100", "PVEVNC:00000000::abc", vp.Port},
	} {
		if conn, _, refusal := wsDial(t, srv.URL, login, c.vmid, c.port, c.ticket); conn != nil || !strings.HasPrefix(refusal, "401") ||
			!strings.Contains(refusal, "invalid PVEVNC ticket") {
			t.Errorf("%s ticket: %q", c.name, refusal)
		}
	}
	// Signed with the real key for the right user, path and port, but 60 s
	// old (PVE accepts 40 s at most).
	key, err := ticket.ParsePrivateKey([]byte(e.File(access.AuthKeyFile)))
	if err != nil {
		t.Fatal(err)
	}
	secret := fmt.Sprintf("admin@pve:/vms/100:%d", vp.Port)
	expired, err := ticket.Sign(key, access.PrefixVNC, "", secret, time.Now().Add(-60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if conn, _, refusal := wsDial(t, srv.URL, login, "100", vp.Port, expired); conn != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("expired ticket: %q", refusal)
	}
	// The same, fresh, verifies (so the refusal above is the age's).
	fresh, _ := ticket.Sign(key, access.PrefixVNC, "", secret, time.Now())
	if err := e.Auth.VerifyVNCTicket(fresh, "admin@pve", "/vms/100", vp.Port); err != nil {
		t.Errorf("fresh ticket: %v", err)
	}
	alice := e.Login("alice").Ticket // may use the console of VM 100, but the ticket is admin's
	if conn, _, refusal := wsDial(t, srv.URL, alice, "100", vp.Port, vp.Ticket); conn != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("another user's ticket: %q", refusal)
	}

	conn, rd, refusal := wsDial(t, srv.URL, login, "100", vp.Port, vp.Ticket)
	if conn == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	op, p := readFrame(t, rd)
	if op != 2 || string(p) != "RFB 003.008\n" {
		t.Fatalf("first frame: op %d %q, want binary RFB 003.008 (task: %s)", op, p, e.wait(vp.UPID))
	}
	// The RFB handshake goes on through the relay: our version, then
	// QEMU's security types (VNC authentication, type 2: a password is set).
	writeFrame(t, conn, 2, []byte("RFB 003.008\n"))
	op, p = readFrame(t, rd)
	if op != 2 || len(p) < 2 || p[0] == 0 || !strings.Contains(string(p[1:1+int(p[0])]), "\x02") {
		t.Fatalf("security types: op %d %q", op, p)
	}
	// ping → pong with the same payload.
	writeFrame(t, conn, 9, []byte("hi"))
	if op, p = readFrame(t, rd); op != 0xA || string(p) != "hi" {
		t.Errorf("pong: op %d %q", op, p)
	}
	// close → close, and the task ends.
	writeFrame(t, conn, 8, []byte{0x03, 0xE8})
	if op, _ = readFrame(t, rd); op != 8 {
		t.Errorf("close answered with op %d", op)
	}
	if st := e.wait(vp.UPID); st != "OK" {
		t.Errorf("vncproxy task: %s", st)
	}

	// The task's one connection is used: the port is closed.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", vp.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still open after the task", vp.Port)
	}
}

// TestVNCProxyTimeout: without a connection within 10 s the task fails
// with PVE's message; an expired ticket is refused.
func TestVNCProxyTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	e := newEnv(t)
	e.createVM("100", nil)
	var vp vncProxyReply
	if err := json.Unmarshal(e.must("POST", "/nodes/"+node+"/qemu/100/vncproxy", url.Values{"websocket": {"1"}}), &vp); err != nil {
		t.Fatal(err)
	}
	if st := e.wait(vp.UPID); !strings.Contains(st, "connection timed out") {
		t.Errorf("task status %q", st)
	}
}

// TestVNCProxyRefusals: vncproxy checks the VM and the permission.
func TestVNCProxyRefusals(t *testing.T) {
	e := newEnv(t)
	if r := e.Do("admin", "POST", "/nodes/"+node+"/qemu/101/vncproxy", nil); r.Status != 500 || !strings.Contains(r.Message, "does not exist") {
		t.Errorf("missing VM: %d %s", r.Status, r.Message)
	}
	e.createVM("100", nil)
	if r := e.Do("ticket:PVE:x", "POST", "/nodes/"+node+"/qemu/100/vncproxy", nil); r.Status != 401 {
		t.Errorf("no login: %d %s", r.Status, r.Message)
	}
	// Without the upgrade, vncwebsocket answers {port} for a valid ticket
	// only.
	if r := e.Do("admin", "GET", "/nodes/"+node+"/qemu/100/vncwebsocket", url.Values{"port": {"5900"}, "vncticket": {"x"}}); r.Status != 401 {
		t.Errorf("bad ticket without upgrade: %d %s", r.Status, r.Message)
	}
}
