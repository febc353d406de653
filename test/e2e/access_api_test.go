package e2e

import (
	"net/http"
	"net/url"
	"testing"
)

// TestAccessAPIReadYourWrites drives the /access API through pveproxy as a
// Terraform-style client does: each write (forwarded to pvedaemon) is
// followed at once by a read or use that pveproxy answers itself from its
// cached copy of user.cfg. pveproxy drops that copy when a forwarded write
// is answered, so no read sees the state before the write.
func TestAccessAPIReadYourWrites(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)

	for i := range 5 { // a few rounds: the cache must never answer stale
		user := "tf" + string(rune('a'+i)) + "@pve"
		if r := c.must(http.MethodPost, "/api2/json/access/users", url.Values{"userid": {user}, "comment": {"made by a test"}}, nil); r.status != http.StatusOK {
			t.Fatalf("create %s: %d %q %v", user, r.status, r.message, r.errors)
		}
		if r := c.get("/api2/json/access/users/" + user); r.status != http.StatusOK {
			t.Fatalf("read %s right after creating it: %d %q", user, r.status, r.message)
		}
		r := c.must(http.MethodPost, "/api2/json/access/users/"+user+"/token/ci", url.Values{"privsep": {"0"}}, nil)
		if r.status != http.StatusOK {
			t.Fatalf("token for %s: %d %q %v", user, r.status, r.message, r.errors)
		}
		var tok struct {
			ID    string `json:"full-tokenid"`
			Value string `json:"value"`
		}
		decode(t, r, &tok)
		tc := n.client(t, clientOpts{keepAlive: true})
		tc.token = tok.ID + "=" + tok.Value
		if r := tc.get("/api2/json/access/permissions"); r.status != http.StatusOK {
			t.Fatalf("new token %s used at once: %d %q", tok.ID, r.status, r.message)
		}
		if r := c.must(http.MethodDelete, "/api2/json/access/users/"+user+"/token/ci", nil, nil); r.status != http.StatusOK {
			t.Fatalf("remove token: %d %q", r.status, r.message)
		}
		if r := tc.get("/api2/json/access/permissions"); r.status != http.StatusUnauthorized {
			t.Fatalf("removed token %s still works: %d", tok.ID, r.status)
		}
		if r := c.must(http.MethodDelete, "/api2/json/access/users/"+user, nil, nil); r.status != http.StatusOK {
			t.Fatalf("delete %s: %d %q", user, r.status, r.message)
		}
		if r := c.get("/api2/json/access/users/" + user); r.status != http.StatusInternalServerError {
			t.Fatalf("read %s right after deleting it: %d, want 500 no such user", user, r.status)
		}
	}
}
