package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// auditLine is one parsed line of an audit log (docs/audit.md).
type auditLine map[string]any

func (l auditLine) str(k string) string { s, _ := l[k].(string); return s }

func (l auditLine) status() int { f, _ := l["status"].(float64); return int(f) }

// auditPath is the audit log of pveproxy or pvedaemon.
func (n *node) auditPath(daemon string) string {
	return filepath.Join(n.prefix, "var/log", daemon, "audit.log")
}

// auditLines returns the lines of an audit log; a line that is not a JSON
// object fails the test.
func (n *node) auditLines(t *testing.T, daemon string) []auditLine {
	t.Helper()
	b, err := os.ReadFile(n.auditPath(daemon))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []auditLine
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" {
			continue
		}
		var m auditLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("%s audit line is not JSON: %q", daemon, l)
			continue
		}
		out = append(out, m)
	}
	return out
}

// waitAudit waits until daemon's audit log has a line for which match is
// true and returns it.
func (n *node) waitAudit(t *testing.T, daemon, what string, match func(auditLine) bool) auditLine {
	t.Helper()
	deadline := time.Now().Add(logWait)
	for {
		for _, l := range n.auditLines(t, daemon) {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.auditPath(daemon))
			t.Fatalf("no %s audit line %s within %v; log:\n%s", daemon, what, logWait, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditFrom matches the line of the call made with X-Real-IP: client.
func auditFrom(client string) func(auditLine) bool {
	return func(l auditLine) bool { return l.str("client") == client }
}

// checkAudit compares the fields of l with want (status as a number; the
// other values as strings, "" meaning the field must be absent or empty).
func checkAudit(t *testing.T, l auditLine, want map[string]any) {
	t.Helper()
	for k, v := range want {
		var got any = l.str(k)
		if k == "status" {
			got = l.status()
		}
		if got != v {
			t.Errorf("audit line %v: %s = %v; want %v", l, k, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, l.str("time")); err != nil {
		t.Errorf("audit line %v: time: %v", l, err)
	}
}

// TestAudit runs the real daemons behind a trusted reverse proxy
// (PROXY_REAL_IP_HEADER with PROXY_REAL_IP_ALLOW_FROM=127.0.0.1) and checks
// the audit lines of a failed and a successful login, a refused CSRF token,
// a permission denial, a write call and a bad API token: pveproxy records
// them with the real client address and the proxy as peer; pvedaemon records
// only the calls made to it directly.
func TestAudit(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{
		proxyFG:  true,
		daemonFG: true,
		defaults: "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n",
	})
	n.addUsers(t)
	login := func(user, pw string) url.Values { return url.Values{"username": {user}, "password": {pw}} }
	from := func(ip string) http.Header { return http.Header{"X-Real-IP": {ip}} }
	c := n.client(t, clientOpts{})
	const path = "/api2/json/access/ticket"

	t.Run("LoginFailure", func(t *testing.T) {
		r := c.must(http.MethodPost, "/api2/json/access/ticket", login(adminUser, "wrong"), from("203.0.113.21"))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("failed login: status %d; want 401", r.status)
		}
		l := n.waitAudit(t, "pveproxy", "for the failed login", auditFrom("203.0.113.21"))
		checkAudit(t, l, map[string]any{"daemon": "pveproxy", "event": "login", "result": "fail", "status": 401,
			"user": adminUser, "client": "203.0.113.21", "peer": "127.0.0.1", "method": "POST", "path": path})
		// the detail pvedaemon knows, never sent to the client
		if reason := l.str("reason"); reason == "" || reason == "authentication failure" {
			t.Errorf("failed login reason %q; want pvedaemon's detail", reason)
		}
	})
	t.Run("LoginSuccess", func(t *testing.T) {
		r := c.must(http.MethodPost, path, login(adminUser, h.adminPW), from("203.0.113.22"))
		if r.status != http.StatusOK {
			t.Fatalf("login: status %d (%q)", r.status, r.message)
		}
		l := n.waitAudit(t, "pveproxy", "for the login", auditFrom("203.0.113.22"))
		checkAudit(t, l, map[string]any{"event": "login", "result": "ok", "status": 200, "user": adminUser,
			"client": "203.0.113.22", "peer": "127.0.0.1", "method": "POST", "path": path, "reason": ""})
	})
	admin := n.client(t, clientOpts{})
	admin.mustLogin(adminUser, h.adminPW)
	t.Run("CSRFFailure", func(t *testing.T) {
		noCSRF := *admin
		noCSRF.csrf = ""
		r := noCSRF.must(http.MethodPost, "/api2/json/access/groups", url.Values{"groupid": {"nocsrf"}}, from("203.0.113.23"))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("write without CSRF token: status %d; want 401", r.status)
		}
		l := n.waitAudit(t, "pveproxy", "for the CSRF failure", auditFrom("203.0.113.23"))
		checkAudit(t, l, map[string]any{"event": "auth", "result": "fail", "status": 401, "user": adminUser,
			"method": "POST", "path": "/api2/json/access/groups", "reason": "no CSRF prevention token"})
	})
	t.Run("Denied", func(t *testing.T) {
		bob := n.client(t, clientOpts{})
		bob.mustLogin(bobUser, bobPW)
		statusPath := "/api2/json/nodes/" + nodeName + "/status"
		r := bob.must(http.MethodGet, statusPath, nil, from("203.0.113.24"))
		if r.status != http.StatusForbidden {
			t.Fatalf("bob GET %s: status %d; want 403", statusPath, r.status)
		}
		l := n.waitAudit(t, "pveproxy", "for the denial", auditFrom("203.0.113.24"))
		checkAudit(t, l, map[string]any{"event": "perm", "result": "denied", "status": 403, "user": bobUser,
			"client": "203.0.113.24", "peer": "127.0.0.1", "method": "GET", "path": statusPath,
			"reason": "Permission check failed (/nodes/" + nodeName + ", Sys.Audit)"})
	})
	t.Run("Write", func(t *testing.T) {
		r := admin.must(http.MethodPost, "/api2/json/access/groups", url.Values{"groupid": {"e2eaudit"}}, from("203.0.113.25"))
		l := n.waitAudit(t, "pveproxy", "for the write", auditFrom("203.0.113.25"))
		checkAudit(t, l, map[string]any{"event": "write", "status": r.status, "user": adminUser,
			"client": "203.0.113.25", "peer": "127.0.0.1", "method": "POST", "path": "/api2/json/access/groups"})
		if r.status != http.StatusOK {
			t.Errorf("POST /access/groups: status %d (%q); want 200", r.status, r.message)
		}
	})
	t.Run("BadToken", func(t *testing.T) {
		tc := n.client(t, clientOpts{})
		tc.token = tokenID + "=00000000-0000-0000-0000-000000000000"
		r := tc.must(http.MethodGet, "/api2/json/version", nil, from("2001:db8::26"))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("bad token: status %d; want 401", r.status)
		}
		l := n.waitAudit(t, "pveproxy", "for the bad token", auditFrom("2001:db8::26"))
		checkAudit(t, l, map[string]any{"event": "auth", "result": "fail", "status": 401, "user": tokenID,
			"peer": "127.0.0.1", "method": "GET", "path": "/api2/json/version"})
		if l.str("reason") == "" {
			t.Errorf("bad token line %v has no reason", l)
		}
	})
	t.Run("NoLineForGET", func(t *testing.T) {
		if r := admin.must(http.MethodGet, "/api2/json/version", nil, from("203.0.113.27")); r.status != http.StatusOK {
			t.Fatalf("GET /version: %d", r.status)
		}
		// a later line proves the writer got past the GET
		c.must(http.MethodGet, "/api2/json/version", nil, from("203.0.113.28"))
		n.waitAudit(t, "pveproxy", "for the unauthenticated GET", auditFrom("203.0.113.28"))
		for _, l := range n.auditLines(t, "pveproxy") {
			if l.str("client") == "203.0.113.27" {
				t.Errorf("a successful authenticated GET was recorded: %v", l)
			}
		}
	})
	t.Run("Daemon", func(t *testing.T) {
		// a call made on 127.0.0.1:85 directly is recorded by pvedaemon
		ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", n.dport, path),
			strings.NewReader(login(bobUser, "wrong").Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("direct login at pvedaemon: status %d; want 401", resp.StatusCode)
		}
		l := n.waitAudit(t, "pvedaemon", "for the direct login", func(l auditLine) bool { return l.str("user") == bobUser })
		checkAudit(t, l, map[string]any{"daemon": "pvedaemon", "event": "login", "result": "fail", "status": 401,
			"client": "127.0.0.1", "peer": "", "method": "POST", "path": path})
		// what pveproxy forwarded is pveproxy's to record, not pvedaemon's
		for _, l := range n.auditLines(t, "pvedaemon") {
			if l.str("user") != bobUser {
				t.Errorf("pvedaemon recorded a forwarded call: %v", l)
			}
		}
	})
	t.Run("Files", func(t *testing.T) {
		for _, tt := range []struct {
			daemon string
			uid    int
		}{{"pveproxy", h.wwwUID}, {"pvedaemon", 0}} {
			fi, err := os.Stat(n.auditPath(tt.daemon))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || int(st.Uid) != tt.uid {
				t.Errorf("%s: mode %v owner %d; want 0640 owned by %d", n.auditPath(tt.daemon), fi.Mode().Perm(), st.Uid, tt.uid)
			}
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		// logrotate moves the file, then reloads the daemon
		p := n.auditPath("pveproxy")
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
		n.mustReload(t)
		c.must(http.MethodGet, "/api2/json/version", nil, from("203.0.113.29"))
		n.waitAudit(t, "pveproxy", "in the new file", auditFrom("203.0.113.29"))
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("new audit log: %v, %v; want mode 0640", fi, err)
		}
	})
}
