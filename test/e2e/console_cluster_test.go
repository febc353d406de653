package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/api/apitest"
)

// TestConsolesOfOtherNode: through node B's pveproxy, the VNC console of
// a VM on node A (vncproxy forwarded to A, the WebSocket forwarded to A's
// pveproxy over the node handshake) shows the RFB greeting of A's QEMU,
// and A's node shell (termproxy) answers its protocol. PVE tunnels both
// over SSH.
func TestConsolesOfOtherNode(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	nodes := newCluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	cb := b.clientOf(t)
	for _, n := range nodes {
		waitResource(t, cb, "node/"+n.name, convergeWithin+10*time.Second, func(e resource) bool { return e["status"] == "online" })
	}
	login := cb.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + a.name + "/qemu"
	upid := startedTask(t, cb, http.MethodPost, base, url.Values{"vmid": {"100"}, "memory": {"64"}, "vga": {"std"}, "start": {"1"}})
	if st := waitTaskOn(t, cb, a.name, upid); st != "OK" {
		t.Fatalf("create and start on A through B: %s", st)
	}
	addrB := net.JoinHostPort(b.ip, strconv.Itoa(b.pport))
	tlsB := b.tlsConfig()
	tlsB.ServerName = "localhost"

	r := cb.must(http.MethodPost, base+"/100/vncproxy", url.Values{"websocket": {"1"}}, nil)
	var vp struct {
		Ticket string `json:"ticket"`
		Port   int    `json:"port"`
	}
	decode(t, r, &vp)
	if r.status != http.StatusOK || vp.Port == 0 {
		t.Fatalf("vncproxy on A through B: %d %s", r.status, r.body)
	}
	q := url.Values{"port": {strconv.Itoa(vp.Port)}, "vncticket": {vp.Ticket}}
	if _, rd, refusal := openWebSocket(t, addrB, tlsB, base+"/100/vncwebsocket?"+url.Values{"port": q["port"], "vncticket": {vp.Ticket[:len(vp.Ticket)-4] + "AAAA"}}.Encode(), login.Ticket); rd != nil || !strings.HasPrefix(refusal, "401") {
		t.Errorf("forged ticket through B: %q", refusal)
	}
	_, rd, refusal := openWebSocket(t, addrB, tlsB, base+"/100/vncwebsocket?"+q.Encode(), login.Ticket)
	if rd == nil {
		t.Fatalf("VNC WebSocket of A's VM through B refused: %s", refusal)
	}
	if p := readBinaryFrame(t, rd); string(p) != "RFB 003.008\n" {
		t.Fatalf("greeting %q", p)
	}

	// A's node shell through B.
	shell := "/api2/json/nodes/" + a.name
	r = cb.must(http.MethodPost, shell+"/termproxy", url.Values{}, nil)
	var tp struct {
		Ticket string `json:"ticket"`
		Port   int    `json:"port"`
		User   string `json:"user"`
	}
	decode(t, r, &tp)
	if r.status != http.StatusOK || tp.Port == 0 {
		t.Fatalf("termproxy on A through B: %d %s", r.status, r.body)
	}
	conn, rd, refusal := openWebSocket(t, addrB, tlsB, shell+"/vncwebsocket?"+url.Values{"port": {strconv.Itoa(tp.Port)}, "vncticket": {tp.Ticket}}.Encode(), login.Ticket)
	if rd == nil {
		t.Fatalf("shell WebSocket of A through B refused: %s", refusal)
	}
	if _, err := conn.Write(apitest.WSClientFrame(0x2, []byte(tp.User+":"+tp.Ticket+"\n"))); err != nil {
		t.Fatal(err)
	}
	f, err := apitest.ReadWSFrame(rd)
	if err != nil || string(f.Payload) != "OK" {
		t.Fatalf("termproxy answer %+v %v", f, err)
	}
}
