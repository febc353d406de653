package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFail2banFilter makes failed logins through pveproxy, turns what
// pvedaemon logged into lines as syslog (or fail2ban's journal backend)
// presents them, "<date> <host> pvedaemon[<pid>]: <message>", and runs
// fail2ban-regex with deploy/fail2ban's filter on them: each failed login
// must match once, with the client's address (as pveproxy passed it on),
// and nothing else pvedaemon logged may match.
func TestFail2banFilter(t *testing.T) {
	t.Parallel()
	regex, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Skip("fail2ban-regex is not installed (apt-get install fail2ban); the filter in deploy/fail2ban is not checked")
	}
	filter, err := filepath.Abs("../../deploy/fail2ban/filter.d/proxmox.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filter); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, nodeOpts{
		daemonFG: true,
		// Trust X-Real-IP from the test client, so that each login comes
		// from an address of its own, as through a reverse proxy.
		defaults: "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n",
	})

	failures := []struct {
		rhost, user, password, want string
	}{
		{"203.0.113.7", adminUser, "wrong",
			"authentication failure; rhost=203.0.113.7 user=admin@pve msg=invalid credentials"},
		{"203.0.113.7", "nobody@pve", "wrong",
			"authentication failure; rhost=203.0.113.7 user=nobody@pve msg=no such user ('nobody@pve')"},
		{"2001:db8::7", adminUser, "",
			"authentication failure; rhost=2001:db8::7 user=admin@pve msg=no password"},
		{"198.51.100.3", "ab", "wrong",
			"authentication failure; rhost=198.51.100.3 user=ab msg=user name 'ab' is too short"},
	}
	login := func(rhost, user, password string) (int, error) {
		c := n.client(t, clientOpts{})
		r, err := c.do(http.MethodPost, "/api2/json/access/ticket",
			url.Values{"username": {user}, "password": {password}}, http.Header{"X-Real-IP": {rhost}})
		if err != nil {
			return 0, err
		}
		return r.status, nil
	}
	// Each failure is answered after 3 s: send them side by side.
	var wg sync.WaitGroup
	for _, f := range failures {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, err := login(f.rhost, f.user, f.password); err != nil || status != http.StatusUnauthorized {
				t.Errorf("login %s from %s: %d, %v; want 401", f.user, f.rhost, status, err)
			}
		}()
	}
	// A success and a refused ticket are logged too, but are no failed logins.
	if status, err := login("203.0.113.9", adminUser, h.adminPW); err != nil || status != http.StatusOK {
		t.Errorf("correct login: %d, %v; want 200", status, err)
	}
	bad := n.client(t, clientOpts{})
	bad.ticket = "PVE:" + adminUser + ":00000000::bm9wZQ=="
	if r := bad.get("/api2/json/version"); r.status != http.StatusUnauthorized {
		t.Errorf("GET with a bad ticket: %d; want 401", r.status)
	}
	wg.Wait()

	log := n.daemonLog(t)
	deadline := time.Now().Add(logWait)
	for len(log.lines("authentication failure;")) < len(failures) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := log.lines("authentication failure;")
	var want []string
	for _, f := range failures {
		want = append(want, f.want)
	}
	if !sameSet(got, want) {
		t.Errorf("pvedaemon logged the failures as\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Everything pvedaemon logged, as syslog presents it.
	pid := n.pid(t, "pvedaemon")
	stamp := time.Now().Format(time.Stamp)
	var syslog strings.Builder
	lines := 0
	for _, l := range strings.Split(log.String(), "\n") {
		if l == "" {
			continue
		}
		fmt.Fprintf(&syslog, "%s %s pvedaemon[%d]: %s\n", stamp, nodeName, pid, l)
		lines++
	}
	path := filepath.Join(t.TempDir(), "daemon.log")
	if err := os.WriteFile(path, []byte(syslog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("fail2ban-regex input (%d lines):\n%s", lines, syslog.String())

	out, err := exec.Command(regex, path, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	wantSummary := fmt.Sprintf("Lines: %d lines, 0 ignored, %d matched, %d missed", lines, len(failures), lines-len(failures))
	if !strings.Contains(string(out), wantSummary) {
		t.Errorf("fail2ban-regex output lacks %q:\n%s", wantSummary, out)
	}
	out, err = exec.Command(regex, "--out", "ip", path, filter).Output()
	if err != nil {
		t.Fatalf("fail2ban-regex --out ip: %v\n%s", err, out)
	}
	gotIPs := strings.Fields(string(out))
	var wantIPs []string
	for _, f := range failures {
		wantIPs = append(wantIPs, f.rhost)
	}
	if !sameSet(gotIPs, wantIPs) {
		t.Errorf("fail2ban-regex found the addresses %q; want %q", gotIPs, wantIPs)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
