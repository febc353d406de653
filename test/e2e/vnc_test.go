package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api/apitest"
)

// TestVNCConsoleThroughProxy is a web console's path over HTTPS: vncproxy
// (forwarded to pvedaemon, which starts the vncproxy task), then
// vncwebsocket upgraded by pveproxy itself, and the RFB greeting of a real
// QEMU arrives in a binary WebSocket frame. A forged ticket is refused.
func TestVNCConsoleThroughProxy(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	c := n.client(t, clientOpts{keepAlive: true})
	login := c.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + nodeName + "/qemu"

	upid := startedTask(t, c, http.MethodPost, base, url.Values{
		"vmid": {"100"}, "memory": {"128"}, "cores": {"1"}, "vga": {"std"},
	})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create: %s\n%s", st, taskLog(t, c, upid))
	}
	upid = startedTask(t, c, http.MethodPost, base+"/100/status/start", url.Values{})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("start: %s\n%s", st, taskLog(t, c, upid))
	}

	r := c.must(http.MethodPost, base+"/100/vncproxy", url.Values{"websocket": {"1"}}, nil)
	var vp struct {
		Ticket string `json:"ticket"`
		Port   int    `json:"port"`
		UPID   string `json:"upid"`
		User   string `json:"user"`
	}
	decode(t, r, &vp)
	if r.status != http.StatusOK || vp.Port < 5900 || !strings.Contains(vp.UPID, ":vncproxy:100:") {
		t.Fatalf("vncproxy: %d %s", r.status, r.body)
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.pport))
	open := func(vncticket string) (*bufio.Reader, string) {
		q := url.Values{"port": {strconv.Itoa(vp.Port)}, "vncticket": {vncticket}}
		_, rd, refusal := openWebSocket(t, addr, n.tlsConfig(), base+"/100/vncwebsocket?"+q.Encode(), login.Ticket)
		return rd, refusal
	}

	if rd, refusal := open(vp.Ticket[:len(vp.Ticket)-4] + "AAAA"); rd != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("forged ticket: %q", refusal)
	}
	rd, refusal := open(vp.Ticket)
	if rd == nil {
		t.Fatalf("upgrade refused: %s", refusal)
	}
	if p := readBinaryFrame(t, rd); string(p) != "RFB 003.008\n" {
		t.Fatalf("greeting %q", p)
	}
}

// openWebSocket opens a WebSocket call on a pveproxy at addr with a login
// ticket; on a refusal it returns the status and body instead.
func openWebSocket(t *testing.T, addr string, cfg *tls.Config, pathQuery, loginTicket string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(reqTimeout))
	rd, _, refusal := apitest.WSHandshake(t, conn, "127.0.0.1", pathQuery, loginTicket)
	if rd == nil {
		return nil, nil, refusal
	}
	return conn, rd, ""
}

// readBinaryFrame reads one final, unmasked binary WebSocket frame of at
// most 125 bytes (a console's first message).
func readBinaryFrame(t *testing.T, rd *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(rd, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x82 || h[1]&0x80 != 0 || h[1] > 125 {
		t.Fatalf("frame header %x: want a final, unmasked binary frame", h)
	}
	p := make([]byte, h[1])
	if _, err := io.ReadFull(rd, p); err != nil {
		t.Fatal(err)
	}
	return p
}
