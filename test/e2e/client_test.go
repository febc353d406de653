package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// reqTimeout bounds every request of the tests (the longest legitimate one
// is a failed login held back for the default 3 s).
const reqTimeout = 20 * time.Second

// clientOpts tune a test client.
type clientOpts struct {
	src       string      // local source address ("" = any), e.g. "127.0.0.2"
	host      string      // address to dial ("" = 127.0.0.1)
	keepAlive bool        // reuse connections
	tls       *tls.Config // nil = verify against the node's CAs
}

// client talks to one node's pveproxy.
type client struct {
	t      *testing.T
	base   string
	hc     *http.Client
	ticket string
	csrf   string
	token  string // "<tokenid>=<secret>" for the PVEAPIToken header
}

// dialer returns a dialer bound to src if set.
func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// tlsConfig is the default client TLS configuration: normal verification
// against the node's CAs.
func (n *node) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: n.certPool()}
}

// client returns an HTTPS client of pveproxy.
func (n *node) client(t *testing.T, o clientOpts) *client {
	host := o.host
	if host == "" {
		host = "127.0.0.1"
	}
	cfg := o.tls
	if cfg == nil {
		cfg = n.tlsConfig()
	}
	tr := &http.Transport{
		DialContext:         dialer(o.src).DialContext,
		TLSClientConfig:     cfg,
		DisableKeepAlives:   !o.keepAlive,
		DisableCompression:  true, // the tests look at the raw bodies
		MaxIdleConnsPerHost: 1,
		ForceAttemptHTTP2:   false,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{
		t:    t,
		base: "https://" + net.JoinHostPort(host, fmt.Sprint(n.pport)),
		hc:   &http.Client{Transport: tr, Timeout: reqTimeout},
	}
}

// resp is an answer of the API.
type resp struct {
	status  int
	header  http.Header
	body    []byte
	data    json.RawMessage
	message string
	errors  map[string]string
}

// do sends a request; form (if not nil) is sent form-encoded as the body.
// Credentials of the client are added. Transport errors are returned.
func (c *client) do(method, path string, form url.Values, hdr http.Header) (*resp, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.ticket != "" {
		req.Header.Set("Cookie", "PVEAuthCookie="+url.QueryEscape(c.ticket))
		if method != http.MethodGet && c.csrf != "" {
			req.Header.Set("CSRFPreventionToken", c.csrf)
		}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "PVEAPIToken="+c.token)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(hr.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	r := &resp{status: hr.StatusCode, header: hr.Header, body: b}
	if strings.HasPrefix(hr.Header.Get("Content-Type"), "application/json") && hr.Header.Get("Content-Encoding") == "" {
		var env struct {
			Data    json.RawMessage   `json:"data"`
			Message string            `json:"message"`
			Errors  map[string]string `json:"errors"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			return nil, fmt.Errorf("decode %s: %w", b, err)
		}
		r.data, r.message, r.errors = env.Data, env.Message, env.Errors
	}
	return r, nil
}

// must is do that fails the test on a transport error.
func (c *client) must(method, path string, form url.Values, hdr http.Header) *resp {
	c.t.Helper()
	r, err := c.do(method, path, form, hdr)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// get is must for a GET without extra headers.
func (c *client) get(path string) *resp {
	c.t.Helper()
	return c.must(http.MethodGet, path, nil, nil)
}

// loginResult is the data of POST /access/ticket.
type loginResult struct {
	Username string                    `json:"username"`
	Ticket   string                    `json:"ticket"`
	CSRF     string                    `json:"CSRFPreventionToken"`
	Cap      map[string]map[string]int `json:"cap"`
}

// login posts the credentials and returns the answer without changing the
// client's credentials.
func (c *client) login(user, password string) (*resp, *loginResult) {
	c.t.Helper()
	r := c.must(http.MethodPost, "/api2/json/access/ticket", url.Values{"username": {user}, "password": {password}}, nil)
	if r.status != http.StatusOK {
		return r, nil
	}
	var lr loginResult
	if err := json.Unmarshal(r.data, &lr); err != nil {
		c.t.Fatalf("login answer %s: %v", r.body, err)
	}
	return r, &lr
}

// mustLogin logs in and makes the client use the ticket.
func (c *client) mustLogin(user, password string) *loginResult {
	c.t.Helper()
	r, lr := c.login(user, password)
	if lr == nil {
		c.t.Fatalf("login %s: status %d, message %q", user, r.status, r.message)
	}
	c.ticket, c.csrf = lr.Ticket, lr.CSRF
	return lr
}

// decode unmarshals the data of r into v.
func decode(t *testing.T, r *resp, v any) {
	t.Helper()
	if err := json.Unmarshal(r.data, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// waitStatus repeats a GET until it answers want (user.cfg changes are seen
// within about a second) and returns the last answer.
func (c *client) waitStatus(path string, want int) *resp {
	c.t.Helper()
	deadline := time.Now().Add(cfgWait)
	for {
		r := c.get(path)
		if r.status == want || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// as returns a copy of c that reports to t (a subtest's), sharing the
// connections and starting with the same credentials.
func (c *client) as(t *testing.T) *client {
	cc := *c
	cc.t = t
	return &cc
}
