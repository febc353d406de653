package apitest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Client calls an API server in-process as pvedaemon's callers do.
type Client struct {
	*Env
	Server *api.Server

	mu     sync.Mutex // guards logins
	logins map[string]*access.LoginResult
}

// Serve builds pvedaemon's API server over reg on Node, authenticating with
// e.Auth (a refused authentication is held back 1 ms, not 3 s), and
// returns a Client of it.
func (e *Env) Serve(reg *api.Registry) *Client {
	e.TB.Helper()
	srv, err := api.NewServer(api.Config{Registry: reg, Auth: e.Auth, Mode: api.ModeDaemon,
		NodeName: Node, Log: e.Log, AuthFailDelay: time.Millisecond})
	if err != nil {
		e.TB.Fatal(err)
	}
	return &Client{Env: e, Server: srv, logins: map[string]*access.LoginResult{}}
}

// Reply is a decoded API answer.
type Reply struct {
	Status int
	// Message is the envelope's message or, for an error without one, the
	// HTTP status line ("401 Unauthorized").
	Message string
	Data    json.RawMessage
	Errors  map[string]string
	Body    string
}

// Decode unmarshals r's data into v.
func (r Reply) Decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Data, err)
	}
}

// Login logs user ("name@realm"; a bare name is of the pve realm) in with
// Password through the real login path, once: later calls return the
// first result.
func (c *Client) Login(user string) *access.LoginResult {
	c.TB.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if res, ok := c.logins[user]; ok {
		return res
	}
	name, realm, ok := strings.Cut(user, "@")
	if !ok {
		realm = "pve"
	}
	res, err := c.Auth.Login(context.Background(), name, Password, realm, "127.0.0.1")
	if err != nil {
		c.TB.Fatalf("login %s: %v", user, err)
	}
	c.logins[user] = res
	return res
}

// Do runs method on path (below /api2/json) as user with params q: in the
// query for GET and DELETE, as a form body otherwise. user is "" for no
// credentials, "token:ID=SECRET" for an API token, "ticket:TICKET" for a
// given ticket, or a user Login logs in (its ticket cookie, and its CSRF
// token on writes).
func (c *Client) Do(user, method, path string, q url.Values) Reply {
	c.TB.Helper()
	target := "/api2/json" + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
	} else {
		body = strings.NewReader(q.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = "127.0.0.1:40000"
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case user == "":
	case strings.HasPrefix(user, "token:"):
		id, secret, _ := strings.Cut(strings.TrimPrefix(user, "token:"), "=")
		req.Header.Set("Authorization", ticket.FormatTokenHeader(id, secret))
	case strings.HasPrefix(user, "ticket:"):
		req.Header.Set("Cookie", ticket.CookieHeader(strings.TrimPrefix(user, "ticket:")))
	default:
		res := c.Login(user)
		req.Header.Set("Cookie", ticket.CookieHeader(res.Ticket))
		if method != http.MethodGet {
			req.Header.Set(api.HeaderCSRF, res.CSRFPreventionToken)
		}
	}
	w := httptest.NewRecorder()
	c.Server.ServeHTTP(w, req)
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
	return Reply{Status: w.Code, Message: msg, Data: env.Data, Errors: env.Errors, Body: w.Body.String()}
}

// Call is Do returning the status, the data and the whole body.
func (c *Client) Call(user, method, path string, q url.Values) (code int, data json.RawMessage, body string) {
	c.TB.Helper()
	r := c.Do(user, method, path, q)
	return r.Status, r.Data, r.Body
}

// Must is Call that fails the test unless the answer is 200; it returns
// the data.
func (c *Client) Must(user, method, path string, q url.Values) json.RawMessage {
	c.TB.Helper()
	r := c.Do(user, method, path, q)
	if r.Status != http.StatusOK {
		c.TB.Fatalf("%s %s %v as %s: %d %s", method, path, q, user, r.Status, r.Body)
	}
	return r.Data
}

// Values builds parameters from key, value pairs.
func Values(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}
