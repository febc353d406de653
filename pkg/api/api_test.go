package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// staticAuth is a seam fake for the unit tests of this package: it accepts
// the ticket "good" for alice@pve and grants privileges from a table. The
// real authenticator is exercised by the daemon integration tests.
type staticAuth struct {
	privs map[string][]string // "authid path" -> privileges
}

func (a staticAuth) AuthenticateTicket(t string) (string, error) {
	if t == "good" {
		return "alice@pve", nil
	}
	return "", errors.New("bad ticket")
}

func (a staticAuth) AuthenticateToken(ctx context.Context, id, secret string) (string, error) {
	if id == "alice@pve!tok" && secret == "s3cret" {
		return "alice@pve", nil
	}
	return "", errors.New("bad token")
}

func (a staticAuth) VerifyCSRF(userid, token string) error {
	if token == "csrf-"+userid {
		return nil
	}
	return errors.New("bad csrf")
}

func (a staticAuth) CheckPrivs(authid, path string, privs []string, anyOf bool) bool {
	have := a.privs[authid+" "+path]
	n := 0
	for _, p := range privs {
		for _, h := range have {
			if h == p {
				n++
			}
		}
	}
	if anyOf {
		return n > 0
	}
	return n == len(privs)
}

func testMethods() []Method {
	echo := func(ctx context.Context, r *Request) (any, error) { return r.Params, nil }
	return []Method{
		{Name: "echo", Path: "/nodes/{node}/echo", HTTP: "POST", Permissions: AllUsers,
			Params: map[string]*Schema{
				"node":  Str().Fmt("pve-node"),
				"vmid":  Int().Range(100, 999999999).Opt(),
				"flag":  Bool().Opt(),
				"name":  Str().MaxLen(5).Opt(),
				"mode":  Str().Enums("a", "b").Opt(),
				"pat":   Str().Pat("[a-z]+").Opt(),
				"path":  Str().Opt().Req("privs"),
				"privs": Str().Opt().Req("path"),
				"ratio": Num().Opt(),
				"list":  Arr(Int()).Opt(),
			},
			Handle: echo},
		{Name: "audit", Path: "/nodes/{node}/audit", HTTP: "GET", Permissions: Perm("/nodes/{node}", "Sys.Audit"),
			Params: map[string]*Schema{"node": Str().Fmt("pve-node")}, Handle: echo},
		{Name: "open", Path: "/open", HTTP: "GET", Permissions: World,
			Handle: func(context.Context, *Request) (any, error) { return "hello", nil }},
		{Name: "fail", Path: "/fail", HTTP: "GET", Permissions: AllUsers,
			Handle: func(context.Context, *Request) (any, error) { return nil, errors.New("VM 100 not running") }},
		{Name: "rootonly", Path: "/rootonly", HTTP: "GET",
			Handle: func(context.Context, *Request) (any, error) { return 1, nil }},
	}
}

func newTestServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer(Config{
		Registry: NewRegistry(testMethods()), Auth: staticAuth{privs: map[string][]string{
			"alice@pve /nodes/n1": {"Sys.Audit"},
		}},
		Mode: ModeDaemon, NodeName: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AuthFailDelay: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type answer struct {
	Data    any               `json:"data"`
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors"`
	Success *int              `json:"success"`
	Status  int               `json:"status"`
}

func call(t *testing.T, s *Server, method, target, ctype, body string, hdr map[string]string) (int, answer) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Cookie", "PVEAuthCookie=good")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json;charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Code, a
}

func TestParameterValidation(t *testing.T) {
	s := newTestServer(t)
	form := "application/x-www-form-urlencoded"
	for _, tt := range []struct {
		name, body, param, want string
	}{
		{"extra", "bogus=1", "bogus", "property is not defined in schema and the schema does not allow additional properties"},
		{"integer", "vmid=abc", "vmid", "type check ('integer') failed - got 'abc'"},
		{"minimum", "vmid=99", "vmid", "value must have a minimum value of 100"},
		{"maximum", "vmid=1000000000", "vmid", "value must have a maximum value of 999999999"},
		{"boolean true is refused over forms", "flag=true", "flag", "type check ('boolean') failed - got 'true'"},
		{"maxLength", "name=toolong", "name", "value may only be 5 characters long"},
		{"enum", "mode=c", "mode", "value 'c' does not have a value in the enumeration 'a, b'"},
		{"pattern", "pat=ABC", "pat", "value does not match the regex pattern"},
		{"requires", "path=/", "privs", "missing property - 'path' requires this property"},
		{"number", "ratio=1.2.3", "ratio", "type check ('number') failed - got '1.2.3'"},
		{"array items", "list=1&list=x", "list", "[1]: type check ('integer') failed - got 'x'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, a := call(t, s, "POST", "/api2/json/nodes/n1/echo", form, tt.body, nil)
			if code != 400 || a.Message != "Parameter verification failed.\n" {
				t.Fatalf("status %d message %q; want 400 Parameter verification failed.", code, a.Message)
			}
			if got := a.Errors[tt.param]; got != tt.want {
				t.Errorf("errors[%s] = %q; want %q (all: %v)", tt.param, got, tt.want, a.Errors)
			}
		})
	}
}

func TestFormatOnPathParameter(t *testing.T) {
	s := newTestServer(t)
	code, a := call(t, s, "POST", "/api2/json/nodes/bad_name/echo", "", "", nil)
	if code != 400 || a.Errors["node"] != "invalid format - value does not look like a valid node name" {
		t.Errorf("status %d errors %v", code, a.Errors)
	}
}

func TestJSONBodyTyping(t *testing.T) {
	s := newTestServer(t)
	code, a := call(t, s, "POST", "/api2/json/nodes/n1/echo", "application/json",
		`{"flag":true,"vmid":100,"ratio":0.5,"list":[1,2]}`, nil)
	if code != 200 {
		t.Fatalf("status %d: %v %v", code, a.Message, a.Errors)
	}
	got := a.Data.(map[string]any)
	want := map[string]any{"node": "n1", "flag": "1", "vmid": "100", "ratio": "0.5", "list": []any{"1", "2"}}
	for k, v := range want {
		if b, _ := json.Marshal(got[k]); string(b) != mustJSON(v) {
			t.Errorf("param %s = %s; want %s", k, b, mustJSON(v))
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestQueryOverridesBodyAndDCDropped(t *testing.T) {
	s := newTestServer(t)
	code, a := call(t, s, "POST", "/api2/json/nodes/n1/echo?name=q&_dc=123", "application/x-www-form-urlencoded", "name=b", nil)
	if code != 200 || a.Data.(map[string]any)["name"] != "q" {
		t.Errorf("status %d data %v; want name=q", code, a.Data)
	}
}

func TestEnvelopes(t *testing.T) {
	s := newTestServer(t)
	for _, tt := range []struct {
		name, target string
		wantCode     int
		wantMsg      string
		wantData     any
	}{
		{"json success", "/api2/json/open", 200, "", "hello"},
		{"json die is 500", "/api2/json/fail", 500, "VM 100 not running\n", nil},
		{"unknown path", "/api2/json/nope", 501, "Method 'GET /nope' not implemented\n", nil},
		{"unknown format", "/api2/xml/open", 501, "no formatter for uri /api2/xml/open\n", nil},
		{"no format", "/api2", 501, "no such uri\n", nil},
		{"root only", "/api2/json/rootonly", 403, "Permission check failed (user != root@pam)\n", nil},
		{"permission", "/api2/json/nodes/localhost/audit", 403, "Permission check failed (/nodes/localhost, Sys.Audit)\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, a := call(t, s, "GET", tt.target, "", "", nil)
			if code != tt.wantCode || a.Message != tt.wantMsg || a.Data != tt.wantData {
				t.Errorf("got %d %q %v; want %d %q %v", code, a.Message, a.Data, tt.wantCode, tt.wantMsg, tt.wantData)
			}
		})
	}
	code, a := call(t, s, "GET", "/api2/extjs/fail", "", "", nil)
	if code != 200 || a.Success == nil || *a.Success != 0 || a.Status != 500 || a.Message != "VM 100 not running\n" {
		t.Errorf("extjs error: %d %+v", code, a)
	}
	code, a = call(t, s, "GET", "/api2/extjs/open", "", "", nil)
	if code != 200 || a.Success == nil || *a.Success != 1 || a.Data != "hello" {
		t.Errorf("extjs success: %d %+v", code, a)
	}
	code, _ = call(t, s, "GET", "/api2/json/nodes/n1/audit", "", "", nil)
	if code != 200 {
		t.Errorf("granted audit: status %d", code)
	}
}

func TestAuthentication(t *testing.T) {
	s := newTestServer(t)
	s.cfg.Mode = ModeProxy
	s.cfg.Forward = NewForwarder(ForwarderConfig{Addr: "127.0.0.1:1", Timeout: time.Second, Log: s.cfg.Log})
	for _, tt := range []struct {
		name     string
		method   string
		hdr      map[string]string
		wantCode int
		wantMsg  string
	}{
		{"no credentials", "GET", map[string]string{"Cookie": ""}, 401, "No ticket"},
		{"bad ticket", "GET", map[string]string{"Cookie": "PVEAuthCookie=evil"}, 401, "Authentication failed!"},
		{"ticket in Authorization", "GET", map[string]string{"Cookie": "", "Authorization": "PVEAuthCookie=good"}, 200, ""},
		{"write without CSRF", "POST", nil, 401, "Permission denied - invalid csrf token"},
		{"write with CSRF", "POST", map[string]string{"CSRFPreventionToken": "csrf-alice@pve"}, 200, ""},
		{"token needs no CSRF", "POST", map[string]string{"Cookie": "", "Authorization": "PVEAPIToken=alice@pve!tok=s3cret"}, 200, ""},
		{"bad token secret", "GET", map[string]string{"Cookie": "", "Authorization": "PVEAPIToken=alice@pve!tok=wrong"}, 401, "Authentication failed!"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := "/api2/json/nodes/n1/echo"
			if tt.method == "GET" {
				target = "/api2/json/nodes/n1/audit"
			}
			code, a := call(t, s, tt.method, target, "", "", tt.hdr)
			if code != tt.wantCode || a.Message != tt.wantMsg {
				t.Errorf("got %d %q; want %d %q", code, a.Message, tt.wantCode, tt.wantMsg)
			}
		})
	}
}

func TestRegistryRefusesBadDeclarations(t *testing.T) {
	h := func(context.Context, *Request) (any, error) { return nil, nil }
	for _, tt := range []struct {
		name string
		ms   []Method
	}{
		{"duplicate", []Method{{Name: "a", Path: "/a", HTTP: "GET", Handle: h}, {Name: "b", Path: "/a", HTTP: "GET", Handle: h}}},
		{"undeclared placeholder", []Method{{Name: "a", Path: "/a/{x}", HTTP: "GET", Handle: h}}},
		{"bad verb", []Method{{Name: "a", Path: "/a", HTTP: "PATCH", Handle: h}}},
		{"bad pattern", []Method{{Name: "a", Path: "/a", HTTP: "GET", Handle: h, Params: map[string]*Schema{"p": Str().Pat("(")}}}},
		{"tail not last", []Method{{Name: "a", Path: "/a/{x}/b", HTTP: "GET", Handle: h, TailParam: true, Params: map[string]*Schema{"x": Str()}}}},
		{"tail on a literal", []Method{{Name: "a", Path: "/a/b", HTTP: "GET", Handle: h, TailParam: true}}},
		{"not and tail", []Method{
			{Name: "b", Path: "/a/{x}", HTTP: "PUT", Handle: h, Params: map[string]*Schema{"x": Str()}},
			{Name: "a", Path: "/a/{x}", HTTP: "GET", Handle: h, TailParam: true, Params: map[string]*Schema{"x": Str()}},
		}},
		{"tail and not", []Method{
			{Name: "a", Path: "/a/{x}", HTTP: "GET", Handle: h, TailParam: true, Params: map[string]*Schema{"x": Str()}},
			{Name: "b", Path: "/a/{x}", HTTP: "PUT", Handle: h, Params: map[string]*Schema{"x": Str()}},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewRegistry did not panic")
				}
			}()
			NewRegistry(tt.ms)
		})
	}
}

// TestTailParam: a tail placeholder takes the rest of the path, slashes
// included, as PVE's fragmentDelimiter ” does for volume IDs.
func TestTailParam(t *testing.T) {
	h := func(context.Context, *Request) (any, error) { return nil, nil }
	r := NewRegistry([]Method{
		{Name: "v", Path: "/s/{storage}/content/{volume}", HTTP: "GET", Handle: h, TailParam: true,
			Params: map[string]*Schema{"storage": Str(), "volume": Str()}},
		{Name: "c", Path: "/s/{storage}/content", HTTP: "GET", Handle: h, Params: map[string]*Schema{"storage": Str()}},
	})
	for _, tc := range []struct {
		path, volume string
		found        bool
	}{
		{"/s/local/content/local:iso/x.iso", "local:iso/x.iso", true},
		{"/s/local/content/local:100/vm-100-disk-0.qcow2", "local:100/vm-100-disk-0.qcow2", true},
		{"/s/local/content/local:iso%2Fx.iso", "local:iso%2Fx.iso", true},
		{"/s/local/content/a/b/c", "a/b/c", true},
		{"/s/local/content", "", true},
		{"/s/local/content/a//b", "", false},
	} {
		m, pp, found := r.Lookup("GET", segments(tc.path))
		if found != tc.found || found && (m == nil || pp["volume"] != tc.volume || pp["storage"] != "local") {
			t.Errorf("%s: %v %v %v; want volume %q", tc.path, m != nil, pp, found, tc.volume)
		}
	}
}

func TestDumpShape(t *testing.T) {
	r := NewRegistry(testMethods())
	var sb strings.Builder
	if err := r.WriteDump(&sb); err != nil {
		t.Fatal(err)
	}
	var tree []map[string]any
	if err := json.Unmarshal([]byte(sb.String()), &tree); err != nil {
		t.Fatal(err)
	}
	nodes := tree[1] // sorted: /fail, /nodes, /open, /rootonly
	if nodes["path"] != "/nodes" || nodes["leaf"] != float64(0) {
		t.Fatalf("second top node = %v", nodes["path"])
	}
	audit := nodes["children"].([]any)[0].(map[string]any)["children"].([]any)[0].(map[string]any)
	get := audit["info"].(map[string]any)["GET"].(map[string]any)
	if audit["path"] != "/nodes/{node}/audit" || get["allowtoken"] != float64(1) ||
		get["parameters"].(map[string]any)["additionalProperties"] != float64(0) {
		t.Errorf("audit dump = %v", audit)
	}
	if check := get["permissions"].(map[string]any)["check"].([]any); check[0] != "perm" || check[1] != "/nodes/{node}" {
		t.Errorf("check = %v", check)
	}
}

func TestSplitAPIPathDecodesSegments(t *testing.T) {
	u, _ := url.Parse("/api2/json/nodes/n1/storage/local/content/local%3Aiso%2Fa.iso")
	f, segs, err := splitAPIPath(u)
	if err != nil || f != "json" || segs[5] != "local:iso/a.iso" {
		t.Errorf("splitAPIPath = %q %q %v", f, segs, err)
	}
}

var _ http.Handler = (*Server)(nil)

func TestCompilePatternBigRepeat(t *testing.T) {
	s := Str().Pat("[0-9a-zA-Z!=]{0,4096}")
	if err := s.compilePatterns(); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]bool{0: true, 1: true, 1000: true, 1001: true, 4096: true, 4097: false} {
		if got := s.matches(strings.Repeat("a", n)); got != want {
			t.Errorf("%d characters: match %v, want %v", n, got, want)
		}
	}
	if s.matches("a:b") {
		t.Error("character outside the class matched")
	}
}
