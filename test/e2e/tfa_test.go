package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tfa"
)

// TestTFALoginE2E: a user registers a TOTP factor through pveproxy with a
// code computed here, then logs in in two steps (password, then code); the
// same code is refused the second time and a recovery key works once.
func TestTFALoginE2E(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	admin := n.client(t, clientOpts{})
	admin.mustLogin(adminUser, h.adminPW)
	const user, pw = "otpuser@pve", "otp-user-password"
	if r := admin.must(http.MethodPost, "/api2/json/access/users", url.Values{"userid": {user}, "password": {pw}}, nil); r.status != 200 {
		t.Fatalf("create user: %d %q %v", r.status, r.message, r.errors)
	}
	c := n.client(t, clientOpts{})
	c.mustLogin(user, pw) // no factor yet: one step

	const uri = "otpauth://totp/otpuser?secret=KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ&digits=6&algorithm=SHA1&period=30"
	totp, err := tfa.ParseTOTP(uri)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		s, err := totp.Code(at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Registration consumes the current step; log in with the next one.
	reg := time.Now()
	r := c.must(http.MethodPost, "/api2/json/access/tfa/"+user, url.Values{
		"type": {"totp"}, "totp": {uri}, "value": {code(reg)}, "description": {"phone"}, "password": {pw}}, nil)
	if r.status != 200 {
		t.Fatalf("add TOTP: %d %q %v", r.status, r.message, r.errors)
	}
	r = c.must(http.MethodPost, "/api2/json/access/tfa/"+user, url.Values{"type": {"recovery"}, "password": {pw}}, nil)
	var rec struct {
		Recovery []string `json:"recovery"`
	}
	decode(t, r, &rec)
	if r.status != 200 || len(rec.Recovery) != 10 {
		t.Fatalf("add recovery keys: %d %q %s", r.status, r.message, r.body)
	}

	step1 := func() string {
		t.Helper()
		r, lr := c.login(user, pw)
		if lr == nil || !strings.HasPrefix(lr.Ticket, "PVE:!tfa!") || strings.Contains(string(r.body), `"cap"`) {
			t.Fatalf("first step: %d %s", r.status, r.body)
		}
		return lr.Ticket
	}
	step2 := func(half, answer string) int {
		t.Helper()
		return c.must(http.MethodPost, "/api2/json/access/ticket", url.Values{
			"username": {user}, "password": {answer}, "tfa-challenge": {half}}, nil).status
	}
	// Registration used the current step; the next step's code is inside
	// the accepted window (-1..+1) and not yet used.
	answer := "totp:" + code(reg.Add(30*time.Second))
	if got := step2(step1(), answer); got != 200 {
		t.Fatalf("second step with the current code: %d", got)
	}
	if got := step2(step1(), answer); got != http.StatusUnauthorized {
		t.Errorf("same code again: %d, want 401", got)
	}
	if got := step2(step1(), "recovery:"+rec.Recovery[0]); got != 200 {
		t.Errorf("recovery key: %d", got)
	}
	if got := step2(step1(), "recovery:"+rec.Recovery[0]); got != http.StatusUnauthorized {
		t.Errorf("used recovery key: %d, want 401", got)
	}
}
