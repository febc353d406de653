package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/qemu/spicetest"
	"github.com/pvenode/pvenode/pkg/spiceticket"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// TestSpiceConsole: a real VM with a SPICE display, the connection fields
// from POST .../spiceproxy through pveproxy, and the SPICE link handshake
// through spiceproxy with them; a forged, an expired and a foreign
// (another cluster's) ticket get no tunnel.
func TestSpiceConsole(t *testing.T) {
	needQEMU(t)
	t.Parallel()
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	sport := freePort(t, "tcp", ":0")
	if _, stderr, err := n.run("spiceproxy", "start", "--prefix", n.prefix, "--port", strconv.Itoa(sport), "--node", n.name); err != nil {
		t.Fatalf("start spiceproxy: %v: %s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = n.run("spiceproxy", "stop", "--prefix", n.prefix) })
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + nodeName + "/qemu"
	upid := startedTask(t, c, http.MethodPost, base, url.Values{"vmid": {"100"}, "name": {"spice"}, "memory": {"64"}, "vga": {"qxl"}, "start": {"1"}})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create and start: %s\n%s", st, taskLog(t, c, upid))
	}
	r := c.must(http.MethodPost, base+"/100/spiceproxy", url.Values{"proxy": {"127.0.0.1"}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("spiceproxy: %d %s", r.status, r.body)
	}
	var vv map[string]any
	decode(t, r, &vv)
	for _, k := range []string{"type", "host", "proxy", "tls-port", "password", "ca", "host-subject", "title", "delete-this-file", "toggle-fullscreen", "secure-attention", "release-cursor"} {
		if _, ok := vv[k]; !ok {
			t.Errorf("spiceproxy answer lacks %s: %v", k, vv)
		}
	}
	host, _ := vv["host"].(string)
	password, _ := vv["password"].(string)
	tlsPort := fmt.Sprint(vv["tls-port"])
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(strings.ReplaceAll(vv["ca"].(string), `\n`, "\n"))) {
		t.Fatalf("ca field: %q", vv["ca"])
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	proxyAddr := "127.0.0.1:" + strconv.Itoa(sport)
	connect := func(ticket string) (string, func(pw string) (uint32, error)) {
		conn, _, status := spiceConnect(t, proxyAddr, "CONNECT "+ticket+":"+tlsPort+" HTTP/1.1\r\nHost: "+ticket+":"+tlsPort+"\r\n\r\n")
		t.Cleanup(func() { conn.Close() })
		return status, func(pw string) (uint32, error) { return spicetest.Link(conn, tc, pw) }
	}

	// The ticket and password from the API: the link succeeds through the
	// proxy; the same tunnel with a wrong password is refused by QEMU.
	status, link := connect(host)
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("CONNECT with the API's ticket: %q", status)
	}
	if res, err := link(password); err != nil || res != spicetest.LinkOK {
		t.Fatalf("SPICE link through spiceproxy: result %d, %v", res, err)
	}
	// A session that stays open: spiceproxy hands the connection to QEMU
	// through pvedaemon (pkg/spicehandoff), so it outlives spiceproxy
	// (checked below).
	conn, _, status := spiceConnect(t, proxyAddr, "CONNECT "+host+":"+tlsPort+" HTTP/1.1\r\nHost: "+host+":"+tlsPort+"\r\n\r\n")
	t.Cleanup(func() { conn.Close() })
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("CONNECT for the session: %q", status)
	}
	session, res, err := spicetest.LinkSession(conn, tc, password)
	if err != nil || res != spicetest.LinkOK {
		t.Fatalf("SPICE session through spiceproxy: result %d, %v", res, err)
	}
	defer session.Close()
	status, link = connect(host)
	if !strings.Contains(status, " 200 ") {
		t.Fatalf("second CONNECT: %q", status)
	}
	if res, err := link(strings.Repeat("0", 40)); err != nil || res == spicetest.LinkOK {
		t.Errorf("wrong SPICE password: result %d, %v", res, err)
	}

	// Forged, expired, and signed by another cluster's secret: no tunnel.
	key, err := n.root.ReadFile("pve-www.key")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(tlsPort)
	expired, _ := spiceticket.Assemble(ticket.CSRFSecret(key), adminUser, 100, nodeName, port, time.Now().Add(-2*time.Minute))
	foreign, _ := spiceticket.Assemble(ticket.CSRFSecret([]byte("another cluster's secret")), adminUser, 100, nodeName, port, time.Now())
	forged := host[:len(host)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", host[len(host)-1])+1)%16])
	for name, tk := range map[string]string{"forged": forged, "expired": expired, "foreign": foreign} {
		if status, _ := connect(tk); !strings.Contains(status, " 401 ") {
			t.Errorf("%s ticket: %q", name, status)
		}
	}

	// The session goes on with spiceproxy stopped: the connection is
	// QEMU's, no tunnel (a tunnel ends with its proxy).
	if _, stderr, err := n.run("spiceproxy", "stop", "--prefix", n.prefix); err != nil {
		t.Fatalf("stop spiceproxy: %v: %s", err, stderr)
	}
	if nch, err := session.ChannelsList(10 * time.Second); err != nil || nch < 1 {
		t.Errorf("SPICE session after spiceproxy stopped: %d channels, %v; want the channel list", nch, err)
	}

	// The same as a remote-viewer file (PVE's spiceconfig format, what the
	// web interface downloads), through pveproxy and pvedaemon (it sets a
	// new password, so it comes last).
	r = c.must(http.MethodPost, "/api2/spiceconfig/nodes/"+nodeName+"/qemu/100/spiceproxy", url.Values{"proxy": {"127.0.0.1"}}, nil)
	body := string(r.body)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-virt-viewer;charset=UTF-8" ||
		!strings.HasPrefix(body, "[virt-viewer]\n") || !strings.Contains(body, "\nhost=pvespiceproxy:") ||
		!strings.Contains(body, "\nca=-----BEGIN CERTIFICATE-----\\n") || !strings.Contains(body, "\ntype=spice\n") {
		t.Errorf("spiceconfig: %d %q\n%s", r.status, r.header.Get("Content-Type"), body)
	}
}
