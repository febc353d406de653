package access_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	accessapi "github.com/pvenode/pvenode/pkg/api2/access"
	"github.com/pvenode/pvenode/pkg/loginguard"
)

// fakeLogin answers LoginWith and VerifyLogin with err (nil: success); the other
// Service methods are not called by POST /access/ticket.
type fakeLogin struct {
	accessapi.Service
	err    error
	checks int // credential checks run
}

func (f *fakeLogin) LoginWith(ctx context.Context, p access.LoginParams) (*access.LoginResult, error) {
	return f.Login(ctx, p.Username, p.Password, p.Realm, p.ClientIP)
}

func (f *fakeLogin) Login(_ context.Context, username, _, realm, _ string) (*access.LoginResult, error) {
	f.checks++
	if f.err != nil {
		return nil, f.err
	}
	return &access.LoginResult{Username: username + "@" + realm, Ticket: "PVE:x"}, nil
}

func (f *fakeLogin) VerifyLogin(ctx context.Context, username, password, realm, _, _ string, _ []string) (string, error) {
	_, err := f.Login(ctx, username, password, realm, "")
	return username + "@" + realm, err
}

// noAuth satisfies api.Authenticator; the login needs no authentication.
type noAuth struct{ api.Authenticator }

// lineRecorder keeps the records logged with loginguard.LineKey.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
	level []slog.Level
}

func (l *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lineRecorder) WithGroup(string) slog.Handler            { return l }
func (l *lineRecorder) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == loginguard.LineKey {
			l.mu.Lock()
			l.lines = append(l.lines, r.Message)
			l.level = append(l.level, r.Level)
			l.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// guardClock is the injected clock of the guard: nothing sleeps.
type guardClock struct {
	now   time.Time
	slept []time.Duration
}

func (c *guardClock) Now() time.Time { return c.now }
func (c *guardClock) Sleep(_ context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	return nil
}

type loginHarness struct {
	srv   *api.Server
	svc   *fakeLogin
	log   *lineRecorder
	clock *guardClock
	guard *loginguard.Guard
}

func newLoginHarness(t *testing.T, withGuard bool) *loginHarness {
	t.Helper()
	h := &loginHarness{svc: &fakeLogin{}, log: &lineRecorder{}, clock: &guardClock{now: time.Unix(1700000000, 0)}}
	if withGuard {
		h.guard = loginguard.New(loginguard.Config{Now: h.clock.Now, Sleep: h.clock.Sleep})
	}
	d := accessapi.Deps{Access: h.svc, Log: slog.New(h.log), Guard: h.guard}
	srv, err := api.NewServer(api.Config{
		Registry: api.NewRegistry(accessapi.Methods(d)), Auth: noAuth{}, Mode: api.ModeDaemon,
		NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), AuthFailDelay: time.Nanosecond,
		ClientIP: func(r *http.Request) netip.Addr {
			a, _ := netip.ParseAddr(r.Header.Get("X-Test-Client"))
			return a
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// login posts the form from client and returns the status.
func (h *loginHarness) login(client string, form url.Values) int {
	req := httptest.NewRequest(http.MethodPost, "/api2/json/access/ticket", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Test-Client", client)
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, req)
	return w.Code
}

func TestLoginFailureLine(t *testing.T) {
	for _, tt := range []struct {
		name   string
		form   url.Values
		client string
		err    error
		want   string
	}{
		{
			name: "WrongPassword", client: "192.0.2.123",
			form: url.Values{"username": {"jose"}, "password": {"x"}, "realm": {"pve"}},
			err:  &access.AuthError{ClientIP: "192.0.2.123", User: "jose@pve", Reason: "invalid credentials"},
			want: "authentication failure; rhost=192.0.2.123 user=jose@pve msg=invalid credentials",
		},
		{
			name: "PAM", client: "2001:db8::7",
			form: url.Values{"username": {"root@pam"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: "2001:db8::7", User: "root@pam", Reason: "pam: Authentication failure"},
			want: "authentication failure; rhost=2001:db8::7 user=root@pam msg=Authentication failure",
		},
		{
			name: "PAMInit", client: "192.0.2.1",
			form: url.Values{"username": {"root@pam"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: "192.0.2.1", User: "root@pam", Reason: "pam: start proxmox-ve-auth: Critical error - immediate abort"},
			want: "authentication failure; rhost=192.0.2.1 user=root@pam msg=error during PAM init: Critical error - immediate abort",
		},
		{
			name: "NoSuchUser", client: "192.0.2.1",
			form: url.Values{"username": {"nobody@pve"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: "192.0.2.1", User: "nobody@pve", Reason: "no such user ('nobody@pve')"},
			want: "authentication failure; rhost=192.0.2.1 user=nobody@pve msg=no such user ('nobody@pve')",
		},
		{
			name: "UserIDTooShort", client: "192.0.2.1",
			form: url.Values{"username": {"ab"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: "192.0.2.1", User: "ab", Reason: `user id "ab" is too short`},
			want: "authentication failure; rhost=192.0.2.1 user=ab msg=user name 'ab' is too short",
		},
		{
			name: "NoRealm", client: "192.0.2.1",
			form: url.Values{"username": {"admin"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: "192.0.2.1", User: "admin", Reason: `value "admin" does not look like a valid user id`},
			want: "authentication failure; rhost=192.0.2.1 user=admin msg=value 'admin' does not look like a valid user name",
		},
		{
			name: "UnknownClient", client: "",
			form: url.Values{"username": {"jose@pve"}, "password": {"x"}},
			err:  &access.AuthError{ClientIP: netip.Addr{}.String(), User: "jose@pve", Reason: "invalid credentials"},
			want: "authentication failure; rhost= user=jose@pve msg=invalid credentials",
		},
		{
			name: "ForgedSecondLine", client: "192.0.2.1",
			form: url.Values{"username": {"x\nh pvedaemon[1]: authentication failure; rhost=198.51.100.9"}, "password": {"x"}},
			err: &access.AuthError{ClientIP: "192.0.2.1", User: "x\nh pvedaemon[1]: authentication failure; rhost=198.51.100.9",
				Reason: "no such user"},
			want: `authentication failure; rhost=192.0.2.1 user=x\nh pvedaemon[1]: authentication failure; rhost=198.51.100.9 msg=value 'x\nh pvedaemon[1]: authentication failure; rhost=198.51.100.9' does not look like a valid user name`,
		},
		{
			name: "Verify", client: "192.0.2.1",
			form: url.Values{"username": {"jose@pve"}, "password": {"x"}, "path": {"/vms"}, "privs": {"VM.Audit"}},
			err:  &access.AuthError{ClientIP: "192.0.2.1", User: "jose@pve", Reason: "no permission (/vms, VM.Audit)"},
			want: "authentication failure; rhost=192.0.2.1 user=jose@pve msg=no permission (/vms, VM.Audit)",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newLoginHarness(t, true)
			h.svc.err = tt.err
			if code := h.login(tt.client, tt.form); code != http.StatusUnauthorized {
				t.Fatalf("status %d; want 401", code)
			}
			if len(h.log.lines) != 1 || h.log.lines[0] != tt.want || h.log.level[0] != slog.LevelError {
				t.Errorf("logged %q at %v; want one line at ERROR:\n%q", h.log.lines, h.log.level, tt.want)
			}
			if want := []time.Duration{3 * time.Second}; len(h.clock.slept) != 1 || h.clock.slept[0] != want[0] {
				t.Errorf("guard waits %v; want %v (answered 3 s after arrival)", h.clock.slept, want)
			}
		})
	}
}

func TestLoginSuccessNotDelayed(t *testing.T) {
	h := newLoginHarness(t, true)
	for range 4 {
		h.svc.err = &access.AuthError{ClientIP: "192.0.2.5", User: "jose@pve", Reason: "invalid credentials"}
		h.login("192.0.2.5", url.Values{"username": {"jose@pve"}, "password": {"typo"}})
	}
	h.clock.slept = nil
	h.svc.err = nil
	if code := h.login("192.0.2.5", url.Values{"username": {"jose@pve"}, "password": {"right"}}); code != http.StatusOK {
		t.Fatalf("status %d; want 200", code)
	}
	if len(h.clock.slept) != 0 {
		t.Errorf("successful login after four failures waited %v; want no wait", h.clock.slept)
	}
	if got := h.guard.Score(netip.MustParseAddr("192.0.2.5")); got != 4 {
		t.Errorf("score %v after the success; want 4", got)
	}
	if len(h.log.lines) != 4 {
		t.Errorf("%d failure lines; want 4", len(h.log.lines))
	}
}

func TestLoginThrottled(t *testing.T) {
	h := newLoginHarness(t, true)
	form := url.Values{"username": {"root"}, "realm": {"pam"}, "password": {"guess"}}
	h.svc.err = &access.AuthError{ClientIP: "198.51.100.9", User: "root@pam", Reason: "pam: Authentication failure"}
	for range 5 {
		h.login("198.51.100.9", form)
	}
	h.clock.slept = nil
	h.login("198.51.100.9", form)
	// 1 s before the check, then the rest of the 3 s (the fake clock
	// stands still, so all of it).
	if want := []time.Duration{time.Second, 3 * time.Second}; len(h.clock.slept) != 2 || h.clock.slept[0] != want[0] || h.clock.slept[1] != want[1] {
		t.Errorf("sixth failure waited %v; want %v", h.clock.slept, want)
	}

	// A source whose queue is full fails unchecked, with PVE's line.
	checks := h.svc.checks
	for range 10 {
		if code := h.login("198.51.100.9", form); code != http.StatusUnauthorized {
			t.Fatalf("status %d; want 401", code)
		}
	}
	if h.svc.checks-checks >= 10 {
		t.Errorf("all %d attempts of a flood were checked; want some refused unchecked", h.svc.checks-checks)
	}
	last := h.log.lines[len(h.log.lines)-1]
	if want := "authentication failure; rhost=198.51.100.9 user=root@pam msg=too many failed logins from this address"; last != want {
		t.Errorf("line of a refused attempt %q; want %q", last, want)
	}

	// Another address is not slowed.
	h.clock.slept = nil
	h.svc.err = nil
	if code := h.login("192.0.2.10", form); code != http.StatusOK || len(h.clock.slept) != 0 {
		t.Errorf("login from another address: %d after %v; want 200 at once", code, h.clock.slept)
	}
}

func TestLoginWithoutGuard(t *testing.T) {
	h := newLoginHarness(t, false)
	h.svc.err = &access.AuthError{ClientIP: "192.0.2.1", User: "jose@pve", Reason: "invalid credentials"}
	if code := h.login("192.0.2.1", url.Values{"username": {"jose@pve"}, "password": {"x"}}); code != http.StatusUnauthorized {
		t.Fatalf("status %d; want 401", code)
	}
	if len(h.log.lines) != 1 {
		t.Errorf("logged %q; want the failure line", h.log.lines)
	}
}
