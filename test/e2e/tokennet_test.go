package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
)

// TestTokenNetworks restricts the API token admin@pve!ci to source networks
// (pvenode/token-networks.cfg, written with access.UpdateTokenNetworks as
// the API does) and checks that pveproxy and pvedaemon refuse it from
// elsewhere like a bad token, and that the refusal is audited. Other client
// addresses are presented through a trusted reverse proxy on 127.0.0.1
// (PROXY_REAL_IP_HEADER with PROXY_REAL_IP_ALLOW_FROM).
func TestTokenNetworks(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{
		defaults: "PROXY_REAL_IP_HEADER=X-Real-IP\nPROXY_REAL_IP_ALLOW_FROM=127.0.0.1\n",
	})
	n.addUsers(t, "acl:1:/:"+tokenID+":PVEAuditor:")
	setList := func(t *testing.T, list string) {
		t.Helper()
		err := access.UpdateTokenNetworks(context.Background(), n.root, func(tn access.TokenNetworks) error {
			return tn.Set(tokenID, list)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tc := n.client(t, clientOpts{})
	tc.token = tokenID + "=" + tokenSecret
	const version = "/api2/json/version"
	// waitFrom repeats a GET presented as coming from ip ("" = the peer,
	// 127.0.0.1) until it answers want: the file is re-read within a
	// second of a change.
	waitFrom := func(t *testing.T, ip string, want int) {
		t.Helper()
		hdr := http.Header{}
		if ip != "" {
			hdr.Set("X-Real-IP", ip)
		}
		deadline := time.Now().Add(cfgWait)
		for {
			r := tc.must(http.MethodGet, version, nil, hdr)
			if r.status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("token from %q: status %d (%q); want %d", ip, r.status, r.message, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("LoopbackAllowed", func(t *testing.T) {
		setList(t, "127.0.0.1/32")
		fi, err := n.root.Stat(access.TokenNetworksFile)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || int(st.Gid) != h.wwwGID {
			t.Errorf("%s: mode %v group %d; want 0640 group www-data, like user.cfg", access.TokenNetworksFile, fi.Mode().Perm(), st.Gid)
		}
		waitFrom(t, "198.51.100.7", http.StatusUnauthorized)
		waitFrom(t, "", http.StatusOK)
	})
	t.Run("OnlyTestNet", func(t *testing.T) {
		setList(t, "192.0.2.0/24")
		waitFrom(t, "", http.StatusUnauthorized)
		r := tc.get(version)
		if r.status != http.StatusUnauthorized || strings.TrimSpace(r.message) != "Authentication failed!" {
			t.Errorf("token from loopback: %d %q; want 401 \"Authentication failed!\" like any bad token", r.status, r.message)
		}
		waitFrom(t, "192.0.2.9", http.StatusOK)
		l := n.waitAudit(t, "pveproxy", "for the refused token", func(l auditLine) bool {
			return l.str("user") == tokenID && strings.Contains(l.str("reason"), "allowed networks") &&
				l.str("client") == "127.0.0.1"
		})
		checkAudit(t, l, map[string]any{"event": "auth", "result": "fail", "status": 401, "client": "127.0.0.1",
			"method": "GET", "path": version})
	})
	t.Run("DaemonEnforces", func(t *testing.T) {
		// the local port cannot be used to get around the list
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", n.dport, version), nil)
		req.Header.Set("Authorization", "PVEAPIToken="+tokenID+"="+tokenSecret)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token at pvedaemon from 127.0.0.1: status %d; want 401", resp.StatusCode)
		}
		n.waitAudit(t, "pvedaemon", "for the refused token", func(l auditLine) bool {
			return l.str("user") == tokenID && strings.Contains(l.str("reason"), "allowed networks")
		})
	})
	t.Run("Cleared", func(t *testing.T) {
		if err := access.ClearTokenNetworks(context.Background(), n.root, tokenID); err != nil {
			t.Fatal(err)
		}
		waitFrom(t, "", http.StatusOK)
	})
}
