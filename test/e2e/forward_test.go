package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForwardedThroughMux checks that pveproxy forwards protected calls over
// pvedaemon's multiplexed socket (pkg/apimux): the socket is root:www-data
// 0660 and, after a forwarded call, pveproxy holds a connection to it.
func TestForwardedThroughMux(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	sock := filepath.Join(n.prefix, "run/pvedaemon/api-mux.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a 0660 socket", sock, fi.Mode())
	}
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	if r := c.get("/api2/json/cluster/status"); r.status != http.StatusOK {
		t.Fatalf("GET /cluster/status (protected): %d %q", r.status, r.message)
	}
	// /proc/net/unix lists the listening socket and each accepted
	// connection under the socket's path.
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Skip(err)
	}
	if got := strings.Count(string(b), " "+sock+"\n"); got < 2 {
		t.Errorf("%d entries for %s in /proc/net/unix, want the listener and pveproxy's connection", got, sock)
	}
}

// TestForwardedCalls checks that protected calls (the login) run in
// pvedaemon: through pveproxy they work while pvedaemon runs, fail with 500
// naming pvedaemon while it is stopped (unprotected calls still work), and
// work again after it is started.
func TestForwardedCalls(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)

	if err := n.stop("pvedaemon"); err != nil {
		t.Fatal(err)
	}
	if got := n.status(t, "pvedaemon"); got != "stopped" {
		t.Fatalf("pvedaemon status after stop = %q", got)
	}
	r, _ := c.login(adminUser, h.adminPW)
	if r.status != http.StatusInternalServerError || !strings.Contains(r.message, "pvedaemon") {
		t.Errorf("login while pvedaemon is stopped: %d %q; want 500 naming pvedaemon", r.status, r.message)
	}
	if r := c.get("/api2/json/version"); r.status != http.StatusOK {
		t.Errorf("GET /version while pvedaemon is stopped: status %d (%q); want 200", r.status, r.message)
	}

	if err := n.startDaemon(false); err != nil {
		t.Fatal(err)
	}
	if _, lr := c.login(adminUser, h.adminPW); lr == nil {
		t.Errorf("login after pvedaemon is back: failed; want it to work")
	}
}
