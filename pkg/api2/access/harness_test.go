package access_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	accessapi "github.com/pvenode/pvenode/pkg/api2/access"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// harness is a pvedaemon-mode API server over a real Authenticator and a
// config root in a temporary directory; calls go through the whole
// api.Server (authentication, parameter checks, permissions, handlers).
type harness struct {
	t    *testing.T
	dir  string
	root *pvefs.Root
	auth *access.Authenticator
	srv  *api.Server
	// tickets caches a login ticket per user.
	tickets map[string]string
}

const testPassword = "correct horse battery"

// newHarness writes userCfg (plus the root user) and domains.cfg and
// starts the server. Every user of the pve realm gets testPassword.
func newHarness(t *testing.T, userCfg string) *harness {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("domains.cfg", "pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\n", 0o640)
	write("user.cfg", "user:root@pam:1:0:::root@localhost:::\n"+userCfg, 0o640)
	write("priv/shadow.cfg", "", 0o600)
	write("priv/token.cfg", "", 0o600)
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := access.NewAuthenticator(access.Deps{
		FS: root, Clock: time.Now, Log: log, TFAStateDir: filepath.Join(dir, "run-tfa"),
		PAM: func(service, user, password, rhost string) error {
			if user == "root" && password == testPassword {
				return nil
			}
			return access.ErrAuthFailed
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := auth.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, _ := access.ParseUserCfg("user.cfg", []byte(userCfg))
	for u := range cfg.Users {
		if strings.HasSuffix(u, "@pve") {
			if err := access.SetPassword(ctx, root, strings.TrimSuffix(u, "@pve"), testPassword); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := api.NewRegistry(accessapi.Methods(accessapi.Deps{Access: auth, Log: log, Root: root}))
	srv, err := api.NewServer(api.Config{Registry: reg, Auth: auth, Mode: api.ModeDaemon, NodeName: "n1", Log: log, AuthFailDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, dir: dir, root: root, auth: auth, srv: srv, tickets: map[string]string{}}
}

// reply is a decoded API answer.
type reply struct {
	Status  int
	Message string
	Data    json.RawMessage
	Errors  map[string]string
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// ticketFor logs user in (the real login path) and returns its ticket.
func (h *harness) ticketFor(user string) string {
	h.t.Helper()
	if tk, ok := h.tickets[user]; ok {
		return tk
	}
	name, realm, _ := strings.Cut(user, "@")
	res, err := h.auth.Login(context.Background(), name, testPassword, realm, "127.0.0.1")
	if err != nil {
		h.t.Fatalf("login %s: %v", user, err)
	}
	h.tickets[user] = res.Ticket
	return res.Ticket
}

// call runs method path with params as user ("" for no credentials;
// "token:ID=SECRET" for an API token).
func (h *harness) call(user, method, path string, params url.Values) reply {
	h.t.Helper()
	target := "/api2/json" + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = "127.0.0.1:40000"
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case strings.HasPrefix(user, "token:"):
		id, secret, _ := strings.Cut(strings.TrimPrefix(user, "token:"), "=")
		req.Header.Set("Authorization", ticket.FormatTokenHeader(id, secret))
	case user != "":
		req.Header.Set("Cookie", ticket.CookieHeader(h.ticketFor(user)))
	}
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, req)
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	msg := env.Message
	if msg == "" && w.Code >= 400 {
		msg = w.Result().Status
	}
	return reply{Status: w.Code, Message: msg, Data: env.Data, Errors: env.Errors}
}

// callWithTicket runs a call with the given ticket as the cookie.
func (h *harness) callWithTicket(tk, method, path string) reply {
	h.t.Helper()
	req := httptest.NewRequest(method, "/api2/json"+path, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Cookie", ticket.CookieHeader(tk))
	w := httptest.NewRecorder()
	h.srv.ServeHTTP(w, req)
	return reply{Status: w.Code}
}

// userCfg reads user.cfg back from disk.
func (h *harness) userCfg() *access.UserCfg {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.dir, "user.cfg"))
	if err != nil {
		h.t.Fatal(err)
	}
	cfg, warns := access.ParseUserCfg("user.cfg", data)
	if len(warns) > 0 {
		h.t.Fatalf("user.cfg written with problems: %v\n%s", warns, data)
	}
	return cfg
}

func (h *harness) fileBytes(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}
