package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCorruptUserCfg checks that a broken user.cfg line is reported by its
// line number and skipped, while the other users keep working and the file
// is left as it is.
func TestCorruptUserCfg(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{daemonFG: true, proxyFG: true})
	cfg := "user:admin@pve:1:0:::::\n" +
		"user:broken\n" +
		"user:root@pam:1:0:::::\n" +
		"\n" +
		"acl:1:/:admin@pve:Administrator:\n"
	n.writeCfg(t, "user.cfg", cfg, 0o640)

	c := n.client(t, clientOpts{})
	deadline := time.Now().Add(cfgWait)
	var daemonWarn, proxyWarn []string
	for {
		c.mustLogin(adminUser, h.adminPW) // makes pvedaemon re-read user.cfg
		if r := c.get("/api2/json/nodes/" + nodeName + "/status"); r.status != http.StatusOK {
			t.Errorf("admin GET status with a corrupt user.cfg line: %d (%q); want 200", r.status, r.message)
		}
		daemonWarn = n.daemonLog(t).lines("user.cfg:2")
		proxyWarn = n.proxyLog(t).lines("user.cfg:2")
		if len(daemonWarn) > 0 && len(proxyWarn) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("pvedaemon: %q", daemonWarn)
	if len(daemonWarn) == 0 {
		t.Errorf("pvedaemon did not warn about user.cfg:2; log:\n%s", n.daemonLog(t).String())
	}
	if len(proxyWarn) == 0 {
		t.Errorf("pveproxy did not warn about user.cfg:2; log:\n%s", n.proxyLog(t).String())
	}
	got, err := n.root.ReadFile("user.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != cfg {
		t.Errorf("user.cfg changed to %q; want it left as written", got)
	}
}

// writePAMService writes /etc/pam.d/<random name> with the given module for
// auth (and pam_permit for account) and removes it when the test ends.
func writePAMService(t *testing.T, authModule string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "pvenode-e2e-" + hex.EncodeToString(b)
	path := filepath.Join("/etc/pam.d", name)
	content := "auth required " + authModule + "\naccount required pam_permit.so\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Skipf("cannot write a PAM service: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
	return name
}

// TestPAMRealm logs root@pam in through PAM services that accept and refuse
// everyone.
func TestPAMRealm(t *testing.T) {
	t.Parallel()
	env(t)
	permit := writePAMService(t, "pam_permit.so")
	deny := writePAMService(t, "pam_deny.so")
	n := newNode(t, nodeOpts{daemonArgs: []string{"--pam-service", permit}})
	c := n.client(t, clientOpts{})

	r, lr := c.login("root@pam", "any password")
	if lr == nil {
		t.Fatalf("root@pam with pam_permit: status %d (%q); want 200", r.status, r.message)
	}
	if lr.Username != "root@pam" {
		t.Errorf("username %q; want root@pam", lr.Username)
	}
	c.ticket = lr.Ticket
	if r := c.get("/api2/json/nodes/" + nodeName + "/status"); r.status != http.StatusOK {
		t.Errorf("root@pam GET status: %d (%q); want 200", r.status, r.message)
	}

	if err := n.stop("pvedaemon"); err != nil {
		t.Fatal(err)
	}
	if err := n.startDaemon(false, "--pam-service", deny); err != nil {
		t.Fatal(err)
	}
	r, _ = c.login("root@pam", "any password")
	if r.status != http.StatusUnauthorized || strings.TrimSpace(r.message) != "authentication failure" {
		t.Errorf("root@pam with pam_deny: %d %q; want 401 \"authentication failure\"", r.status, r.message)
	}
}

// TestAuthFailDelay measures once that a failed authentication is held back
// for PVE's 3 s at the default settings.
func TestAuthFailDelay(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{realDelay: true})
	const min = 2900 * time.Millisecond
	var wg sync.WaitGroup
	var loginTook, ticketTook time.Duration
	var loginStatus, ticketStatus int
	wg.Add(2)
	go func() {
		defer wg.Done()
		c := n.client(t, clientOpts{})
		start := time.Now()
		r, err := c.do(http.MethodPost, "/api2/json/access/ticket", map[string][]string{"username": {adminUser}, "password": {"wrong"}}, nil)
		loginTook = time.Since(start)
		if err == nil {
			loginStatus = r.status
		}
	}()
	go func() {
		defer wg.Done()
		c := n.client(t, clientOpts{})
		c.ticket = "PVE:" + adminUser + ":00000000::bm9wZQ=="
		start := time.Now()
		r, err := c.do(http.MethodGet, "/api2/json/version", nil, nil)
		ticketTook = time.Since(start)
		if err == nil {
			ticketStatus = r.status
		}
	}()
	wg.Wait()
	t.Logf("failed login answered after %v, bad ticket after %v", loginTook, ticketTook)
	if ticketStatus != http.StatusUnauthorized || ticketTook < min {
		t.Errorf("bad ticket: status %d after %v; want 401 after at least %v", ticketStatus, ticketTook, min)
	}
	if loginStatus != http.StatusUnauthorized {
		t.Fatalf("failed login: status %d; want 401", loginStatus)
	}
	if loginTook < min {
		t.Errorf("failed login answered after %v; want at least %v", loginTook, min)
	}
}

// TestConfigRewriteKeepsGroup rewrites user.cfg as root through pvefs, as
// pvedaemon does for every user or ACL change, and checks that pveproxy
// (www-data) can still read it: the file must stay root:www-data.
func TestConfigRewriteKeepsGroup(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)

	old, err := n.root.ReadFile("user.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.root.WriteFile("user.cfg", old, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := n.root.Stat("user.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if gid := int(fi.Sys().(*syscall.Stat_t).Gid); gid != h.wwwGID {
		t.Fatalf("pvefs.Root.WriteFile replaced user.cfg with group %d; want www-data (%d), "+
			"so pveproxy could no longer read it", gid, h.wwwGID)
	}
	// pveproxy re-reads the file within a second; it must keep accepting.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if r := c.get("/api2/json/version"); r.status != http.StatusOK {
			t.Fatalf("GET /version after user.cfg was rewritten: %d (%q); want 200", r.status, r.message)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
