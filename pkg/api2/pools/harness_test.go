package pools_test

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
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/api2/pools"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// harness is a pvedaemon-mode API server over a real Authenticator and a
// config root in a temporary directory; calls go through the whole
// api.Server (authentication, parameter checks, permissions, handlers).
type harness struct {
	t    *testing.T
	dir  string
	auth *access.Authenticator
	srv  *api.Server
	// tickets caches a login ticket per user.
	tickets map[string]string
}

const testPassword = "correct horse battery"

// newHarness writes userCfg (after the root user), the other files (name
// under the config root -> content) and domains.cfg, and starts the
// server on node "n1". Every user of the pve realm gets testPassword.
func newHarness(t *testing.T, userCfg string, files map[string]string) *harness {
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
	for name, data := range files {
		write(name, data, 0o640)
	}
	keys := sharedKeys.get()
	for name, data := range keys {
		write(name, string(data), 0o600)
	}
	root, err := pvefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	auth, err := access.NewAuthenticator(access.Deps{
		FS: root, Clock: time.Now, Log: log,
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
	if keys == nil {
		sharedKeys.set(t, dir)
	}
	cfg, _ := access.ParseUserCfg("user.cfg", []byte(userCfg))
	for u := range cfg.Users {
		if strings.HasSuffix(u, "@pve") {
			if err := access.SetPassword(ctx, root, strings.TrimSuffix(u, "@pve"), testPassword); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := api.NewRegistry(pools.Methods(pools.Deps{Access: auth, Root: root}))
	srv, err := api.NewServer(api.Config{Registry: reg, Auth: auth, Mode: api.ModeDaemon, NodeName: "n1", Log: log, AuthFailDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, dir: dir, auth: auth, srv: srv, tickets: map[string]string{}}
}

// sharedKeys are the signing keys of the first harness, reused by the
// others: generating an RSA key per test is most of a test's time.
var sharedKeys keyCache

type keyCache struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (c *keyCache) get() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.files
}

func (c *keyCache) set(t *testing.T, dir string) {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{access.AuthKeyFile, access.AuthPubFile, access.WWWKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = files
}

// reply is a decoded API answer.
type reply struct {
	Status  int
	Message string
	Data    json.RawMessage
	Errors  map[string]string
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

// call runs method path with params as user.
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
	if user != "" {
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

// file reads a file under the config root.
func (h *harness) file(name string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// poolLines returns the pool: lines of user.cfg as written.
func (h *harness) poolLines() string {
	h.t.Helper()
	var out []string
	for _, l := range strings.Split(h.file("user.cfg"), "\n") {
		if strings.HasPrefix(l, "pool:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}
