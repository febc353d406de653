package e2e

import (
	"net/http"
	"strings"
	"testing"
)

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
