package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/pvenode/pvenode/pkg/audit"
	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// auditAuth is staticAuth with a token that may only be used from
// 192.0.2.0/24 and refusals that carry their detail, as access.AuthError.
type auditAuth struct{ staticAuth }

// detailErr is a refusal with its audit detail.
type detailErr struct{ user, reason string }

func (e *detailErr) Error() string                      { return "authentication failure" }
func (e *detailErr) AuditDetail() (user, reason string) { return e.user, e.reason }

func (a auditAuth) AuthenticateTicket(t string) (string, error) {
	if t == "forged" {
		return "", &detailErr{"root@pam", "invalid ticket"}
	}
	return a.staticAuth.AuthenticateTicket(t)
}

func (a auditAuth) AuthenticateTokenFrom(ctx context.Context, id, secret string, client netip.Addr) (string, error) {
	user, err := a.AuthenticateToken(ctx, id, secret)
	if err != nil {
		return "", &detailErr{id, "invalid token secret"}
	}
	if !netip.MustParsePrefix("192.0.2.0/24").Contains(client) {
		return "", &detailErr{id, "client " + client.String() + " not in the token's allowed networks"}
	}
	return user, nil
}

func auditMethods() []Method {
	ok := func(context.Context, *Request) (any, error) { return "ok", nil }
	return []Method{
		{Name: "create_ticket", Path: "/access/ticket", HTTP: "POST", Protected: true, Permissions: World,
			Params: map[string]*Schema{"username": Str(), "password": Str(), "realm": Str().Opt()},
			Handle: func(ctx context.Context, r *Request) (any, error) {
				switch r.Params.Get("password") {
				case "right":
					return map[string]string{"username": r.Params.Get("username")}, nil
				case "first-factor":
					audit.SetReason(ctx, "second factor required")
					return map[string]string{"username": r.Params.Get("username")}, nil
				}
				audit.SetReason(ctx, "wrong password")
				return nil, &Error{Status: http.StatusUnauthorized, Message: MsgLoginFail + "\n"}
			}},
		{Name: "status", Path: "/nodes/{node}/status", HTTP: "GET", Permissions: Perm("/nodes/{node}", "Sys.Audit"),
			Params: map[string]*Schema{"node": Str().Fmt("pve-node")}, Handle: ok},
		{Name: "version", Path: "/version", HTTP: "GET", Permissions: AllUsers, Handle: ok},
		{Name: "open", Path: "/open", HTTP: "GET", Permissions: World, Handle: ok},
		{Name: "set", Path: "/nodes/{node}/config", HTTP: "PUT", Permissions: AllUsers,
			Params: map[string]*Schema{"node": Str().Fmt("pve-node"), "v": Int().Opt()}, Handle: ok},
		{Name: "start", Path: "/nodes/{node}/start", HTTP: "POST", Protected: true, Permissions: AllUsers,
			Params: map[string]*Schema{"node": Str().Fmt("pve-node")},
			Handle: func(context.Context, *Request) (any, error) { return nil, errors.New("VM 100 not running") }},
	}
}

// syncBuf collects the audit lines.
type syncBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// auditSetup is a pveproxy-mode Server forwarding to a pvedaemon-mode
// Server over HTTP, each with its audit log.
type auditSetup struct {
	proxy, daemon       *Server
	proxyLog, daemonLog *audit.Logger
	proxyBuf, daemonBuf syncBuf
}

func newAuditSetup(t *testing.T, daemonFromProxy bool) *auditSetup {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth := auditAuth{staticAuth{privs: map[string][]string{"alice@pve /nodes/n1": {"Sys.Audit"}}}}
	as := &auditSetup{}
	var err error
	as.proxyLog, _ = audit.New(&as.proxyBuf, audit.Options{Daemon: "pveproxy"})
	as.daemonLog, _ = audit.New(&as.daemonBuf, audit.Options{Daemon: "pvedaemon"})
	as.daemon, err = NewServer(Config{
		Registry: NewRegistry(auditMethods()), Auth: auth, Mode: ModeDaemon, NodeName: "n1", Log: log,
		AuthFailDelay: time.Millisecond, Audit: as.daemonLog,
		ClientIP: func(r *http.Request) netip.Addr {
			a, _ := netip.ParseAddr(r.Header.Get(HeaderClientIP))
			return a
		},
		FromProxy: func(*http.Request) bool { return daemonFromProxy },
	})
	if err != nil {
		t.Fatal(err)
	}
	ds := httptest.NewServer(as.daemon)
	t.Cleanup(ds.Close)
	fwd := NewForwarder(ForwarderConfig{Addr: strings.TrimPrefix(ds.URL, "http://"), Timeout: 5 * time.Second, Log: log})
	t.Cleanup(fwd.Close)
	as.proxy, err = NewServer(Config{
		Registry: NewRegistry(auditMethods()), Auth: auth, Mode: ModeProxy, NodeName: "n1", Log: log,
		Forward: fwd, AuthFailDelay: time.Millisecond, Audit: as.proxyLog,
		ClientIP: func(r *http.Request) netip.Addr { return reqinfo.FromContext(r.Context()).ClientIP() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// auditReq is one request of the audit tests.
type auditReq struct {
	method, target string
	form           url.Values
	hdr            map[string]string
	peer, client   string // client: the real-IP header's address, if any
}

// serveAudit sends r to s as coming from r.peer through the HTTP front
// (a reqinfo.Info) and returns the answer.
func serveAudit(s *Server, r auditReq) *httptest.ResponseRecorder {
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req := httptest.NewRequest(r.method, r.target, body)
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range r.hdr {
		req.Header.Set(k, v)
	}
	peer := netip.MustParseAddrPort(r.peer + ":40000")
	req.RemoteAddr = peer.String()
	info := reqinfo.New(peer)
	if r.client != "" {
		info.SetClientIP(netip.MustParseAddr(r.client))
	}
	req = req.WithContext(reqinfo.NewContext(req.Context(), info))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// auditLines closes l and returns its lines.
func auditLines(t *testing.T, l *audit.Logger, buf *syncBuf) []map[string]any {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditProxy(t *testing.T) {
	as := newAuditSetup(t, true)
	ticket := map[string]string{"Cookie": "PVEAuthCookie=good"}
	withCSRF := map[string]string{"Cookie": "PVEAuthCookie=good", HeaderCSRF: "csrf-alice@pve"}
	token := map[string]string{"Authorization": "PVEAPIToken=alice@pve!tok=s3cret"}
	login := func(pw string) url.Values {
		return url.Values{"username": {"alice"}, "realm": {"pve"}, "password": {pw}}
	}
	type want struct {
		event, result string
		status        float64
		user, client  string
		peer          string // "" = no peer field
		reason        string // substring of the reason; "" = no reason field
	}
	cases := []struct {
		name     string
		req      auditReq
		wantCode int
		want     *want // nil: no line
	}{
		{"world GET", auditReq{method: "GET", target: "/api2/json/open", peer: "192.0.2.1"}, 200, nil},
		{"authenticated GET", auditReq{method: "GET", target: "/api2/json/version", hdr: ticket, peer: "192.0.2.1"}, 200, nil},
		{"no credentials", auditReq{method: "GET", target: "/api2/json/version", peer: "192.0.2.1"}, 401,
			&want{"auth", "fail", 401, "", "192.0.2.1", "", "no credentials"}},
		{"forged ticket behind a proxy",
			auditReq{method: "GET", target: "/api2/json/version", hdr: map[string]string{"Cookie": "PVEAuthCookie=forged"},
				peer: "127.0.0.1", client: "203.0.113.7"}, 401,
			&want{"auth", "fail", 401, "root@pam", "203.0.113.7", "127.0.0.1", "invalid ticket"}},
		{"permission denied", auditReq{method: "GET", target: "/api2/json/nodes/n2/status", hdr: ticket, peer: "192.0.2.1"}, 403,
			&want{"perm", "denied", 403, "alice@pve", "192.0.2.1", "", "Permission check failed (/nodes/n2, Sys.Audit)"}},
		{"write", auditReq{method: "PUT", target: "/api2/json/nodes/n1/config", form: url.Values{"v": {"1"}}, hdr: withCSRF,
			peer: "192.0.2.1"}, 200, &want{"write", "ok", 200, "alice@pve", "192.0.2.1", "", ""}},
		{"write with a bad parameter", auditReq{method: "PUT", target: "/api2/json/nodes/n1/config",
			form: url.Values{"v": {"x"}}, hdr: withCSRF, peer: "192.0.2.1"}, 400,
			&want{"write", "fail", 400, "alice@pve", "192.0.2.1", "", "Parameter verification failed: v: type check"}},
		{"write without CSRF token", auditReq{method: "PUT", target: "/api2/json/nodes/n1/config", hdr: ticket,
			peer: "192.0.2.1"}, 401, &want{"auth", "fail", 401, "alice@pve", "192.0.2.1", "", "no CSRF prevention token"}},
		{"token from its network", auditReq{method: "GET", target: "/api2/json/version", hdr: token, peer: "192.0.2.9"}, 200, nil},
		{"token from elsewhere", auditReq{method: "GET", target: "/api2/json/version", hdr: token, peer: "198.51.100.1"}, 401,
			&want{"auth", "fail", 401, "alice@pve!tok", "198.51.100.1", "", "198.51.100.1 not in the token's allowed networks"}},
		{"forwarded login failure", auditReq{method: "POST", target: "/api2/json/access/ticket", form: login("wrong"),
			peer: "192.0.2.1"}, 401, &want{"login", "fail", 401, "alice@pve", "192.0.2.1", "", "wrong password"}},
		{"forwarded login failure, extjs", auditReq{method: "POST", target: "/api2/extjs/access/ticket", form: login("wrong"),
			peer: "192.0.2.1"}, 200, &want{"login", "fail", 401, "alice@pve", "192.0.2.1", "", "wrong password"}},
		{"forwarded login", auditReq{method: "POST", target: "/api2/json/access/ticket", form: login("right"),
			peer: "192.0.2.1"}, 200, &want{"login", "ok", 200, "alice@pve", "192.0.2.1", "", ""}},
		{"forwarded half login", auditReq{method: "POST", target: "/api2/json/access/ticket", form: login("first-factor"),
			peer: "192.0.2.1"}, 200, &want{"login", "ok", 200, "alice@pve", "192.0.2.1", "", "second factor required"}},
		{"forwarded write that fails", auditReq{method: "POST", target: "/api2/json/nodes/n1/start", hdr: withCSRF,
			peer: "192.0.2.1"}, 500, &want{"write", "fail", 500, "alice@pve", "192.0.2.1", "", "VM 100 not running"}},
		{"write to an unknown path", auditReq{method: "DELETE", target: "/api2/json/nowhere", peer: "192.0.2.1"}, 501,
			&want{"write", "fail", 501, "", "192.0.2.1", "", "Method 'DELETE /nowhere' not implemented"}},
	}
	for _, tt := range cases {
		rec := serveAudit(as.proxy, tt.req)
		if rec.Code != tt.wantCode {
			t.Errorf("%s: status %d (%s); want %d", tt.name, rec.Code, rec.Body, tt.wantCode)
		}
		if v := rec.Header().Get(AuditHeader); v != "" {
			t.Errorf("%s: the client got pvedaemon's %s header %q", tt.name, AuditHeader, v)
		}
	}
	lines := auditLines(t, as.proxyLog, &as.proxyBuf)
	i := 0
	for _, tt := range cases {
		if tt.want == nil {
			continue
		}
		if i >= len(lines) {
			t.Errorf("%s: no audit line", tt.name)
			continue
		}
		l, w := lines[i], tt.want
		i++
		reason, hasReason := l["reason"].(string)
		peer, _ := l["peer"].(string)
		if l["event"] != w.event || l["result"] != w.result || l["status"] != w.status || l["user"] != w.user ||
			l["client"] != w.client || peer != w.peer || l["daemon"] != "pveproxy" ||
			l["method"] != tt.req.method || l["path"] != strings.SplitN(tt.req.target, "?", 2)[0] ||
			hasReason != (w.reason != "") || !strings.Contains(reason, w.reason) {
			t.Errorf("%s: audit line %v; want %+v", tt.name, l, *w)
		}
	}
	for ; i < len(lines); i++ {
		t.Errorf("unexpected audit line %v", lines[i])
	}
	// pvedaemon records nothing of what pveproxy forwarded
	if dl := auditLines(t, as.daemonLog, &as.daemonBuf); len(dl) != 0 {
		t.Errorf("pvedaemon recorded forwarded calls: %v", dl)
	}
}

// TestAuditDaemonDirect checks that pvedaemon records the calls made to it
// directly (not through pveproxy), with the peer as client.
func TestAuditDaemonDirect(t *testing.T) {
	as := newAuditSetup(t, false)
	form := url.Values{"username": {"root"}, "realm": {"pam"}, "password": {"wrong"}}
	req := auditReq{method: "POST", target: "/api2/json/access/ticket", form: form, peer: "127.0.0.1",
		hdr: map[string]string{HeaderClientIP: "127.0.0.1"}}
	if rec := serveAudit(as.daemon, req); rec.Code != http.StatusUnauthorized {
		t.Fatalf("login: status %d; want 401", rec.Code)
	}
	if rec := serveAudit(as.daemon, req); rec.Header().Get(AuditHeader) != "" {
		t.Errorf("a direct caller got the %s header", AuditHeader)
	}
	lines := auditLines(t, as.daemonLog, &as.daemonBuf)
	if len(lines) != 2 {
		t.Fatalf("pvedaemon lines %v; want two", lines)
	}
	l := lines[0]
	if l["daemon"] != "pvedaemon" || l["event"] != "login" || l["user"] != "root@pam" || l["client"] != "127.0.0.1" ||
		l["reason"] != "wrong password" {
		t.Errorf("pvedaemon line %v; want the failed login of root@pam from 127.0.0.1 with its reason", l)
	}
}

// TestAuditGETDoesNotAllocate guards the hot path: an authenticated GET
// that succeeds allocates no more with an audit log than without.
func TestAuditGETDoesNotAllocate(t *testing.T) {
	measure := func(l *audit.Logger) float64 {
		s, err := NewServer(Config{
			Registry: NewRegistry(auditMethods()), Auth: staticAuth{}, Mode: ModeDaemon, NodeName: "n1",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Audit: l,
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/api2/json/version", nil)
		req.Header.Set("Cookie", "PVEAuthCookie=good")
		return testing.AllocsPerRun(200, func() { s.ServeHTTP(httptest.NewRecorder(), req) })
	}
	l, _ := audit.New(io.Discard, audit.Options{Daemon: "pveproxy"})
	defer l.Close()
	if without, with := measure(nil), measure(l); with > without {
		t.Errorf("authenticated GET: %v allocations with an audit log, %v without", with, without)
	}
}
