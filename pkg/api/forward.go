package api

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/apimux"

	"github.com/pvenode/pvenode/pkg/reqinfo"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Forwarder passes protected calls from pveproxy to pvedaemon, with the
// headers PVE uses: PVEDisableProxy, PVEClientIP, the caller's credentials
// re-encoded (ticket as the PVEAuthCookie cookie, token as
// "PVEAPIToken <urlencoded>"), the CSRF token and Host. PVE opens a new
// connection per call; this sends calls multiplexed on shared connections
// to pvedaemon's mux socket (pkg/apimux) and falls back to keep-alive
// HTTP/1.1 (its Unix socket, then 127.0.0.1:85) when that socket is not
// there.
type Forwarder struct {
	addr       string // host:port of pvedaemon
	mux        *apimux.Client
	client     *loopClient
	log        *slog.Logger
	afterWrite func()
}

// ForwarderConfig says where pvedaemon is.
type ForwarderConfig struct {
	Addr      string // 127.0.0.1:85
	Socket    string // its HTTP Unix socket; "" for none
	MuxSocket string // its apimux socket; "" for none
	Timeout   time.Duration
	Log       *slog.Logger
	// AfterWrite runs when pvedaemon has answered a call that may have
	// changed the config root (any method but GET and HEAD), before the
	// answer is relayed: pveproxy drops its cached config files there, so
	// a client's next call sees its own write.
	AfterWrite func()
}

// NewForwarder returns a Forwarder to pvedaemon. Calls time out after
// cfg.Timeout (PVE: 30 s) unless the client goes first.
func NewForwarder(cfg ForwarderConfig) *Forwarder {
	f := &Forwarder{
		addr:       cfg.Addr,
		client:     &loopClient{socket: cfg.Socket, addr: cfg.Addr, dialTimeout: 5 * time.Second, timeout: cfg.Timeout},
		log:        cfg.Log,
		afterWrite: cfg.AfterWrite,
	}
	if cfg.MuxSocket != "" {
		f.mux = &apimux.Client{Socket: cfg.MuxSocket, DialTimeout: 5 * time.Second, Timeout: cfg.Timeout}
	}
	return f
}

// Close drops idle connections.
func (f *Forwarder) Close() {
	f.client.closeIdle()
	if f.mux != nil {
		f.mux.CloseIdle()
	}
}

// hopHeaders are not relayed from pvedaemon's answer.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Proxy-Connection": true, "Content-Length": true,
}

// send sends one call to pvedaemon: through the mux when its socket is
// there, otherwise over HTTP/1.1.
func (f *Forwarder) send(ctx context.Context, method, uri, host string, h http.Header, body []byte) (*http.Response, error) {
	if f.mux != nil && len(body) <= apimux.MaxRequestBody {
		resp, err := f.mux.Do(ctx, &apimux.Request{Method: method, URI: uri, Host: host, Header: h, Body: body})
		var op *net.OpError
		if err == nil || !asOpError(err, &op) || op.Op != "dial" {
			return resp, err
		}
		// No mux socket (a pvedaemon without one): plain HTTP.
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+f.addr+uri, bodyReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	req.Header = h
	req.Host = host
	return f.client.do(ctx, req)
}

// Forward sends the call to pvedaemon and relays its answer.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, body []byte, id Identity, clientIP netip.Addr) {
	ctx := r.Context()
	resp, err := f.send(ctx, r.Method, r.URL.RequestURI(), r.Host, forwardHeader(r, id, clientIP), body)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		f.log.Error("forward to pvedaemon failed", "addr", f.addr, "err", err)
		WriteError(w, r, http.StatusInternalServerError, "proxy request to pvedaemon failed: "+shortErr(err)+"\n")
		return
	}
	f.relay(w, r, resp)
}

// forwardHeader returns the header fields of a call forwarded to pvedaemon.
func forwardHeader(r *http.Request, id Identity, clientIP netip.Addr) http.Header {
	h := make(http.Header, 8)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		h["Content-Type"] = []string{ct}
	}
	h[HeaderDisableProxy] = []string{"true"}
	h[HeaderClientIP] = []string{clientIP.String()}
	switch {
	case id.Ticket != "":
		h["Cookie"] = []string{ticket.CookieHeader(id.Ticket)}
	case id.TokenID != "":
		h["Authorization"] = []string{ticket.FormatTokenHeader(id.TokenID, id.TokenSecret)}
	}
	if c := r.Header.Get(HeaderCSRF); c != "" {
		h[HeaderCSRF] = []string{c}
	}
	// Compression happens once, at the edge (pveproxy), not on loopback.
	h["Accept-Encoding"] = []string{"identity"}
	return h
}

// relay writes pvedaemon's answer resp to w and closes its body.
func (f *Forwarder) relay(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	if f.afterWrite != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		f.afterWrite()
	}
	relayAnswer(w, r, resp, "http://"+f.addr, f.log)
}

// relayAnswer copies an upstream answer to the client: status, headers
// (without hop-by-hop ones; a Location under origin made relative) and the
// streamed body. An upstream answer that breaks off cuts the client's too.
func relayAnswer(w http.ResponseWriter, r *http.Request, resp *http.Response, origin string, log *slog.Logger) {
	ctx := r.Context()
	defer resp.Body.Close()
	out := w.Header()
	for k, vs := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		if k == "Location" {
			for i, v := range vs {
				vs[i] = strings.TrimPrefix(v, origin)
			}
		}
		out[k] = vs
	}
	if resp.ContentLength >= 0 {
		out.Set("Content-Length", itoa(resp.ContentLength))
	}
	// Relay pvedaemon's reason phrase ("401 authentication failure").
	if _, reason, ok := strings.Cut(resp.Status, " "); ok && resp.StatusCode >= 400 {
		reqinfo.FromContext(ctx).SetReason(reason)
	}
	w.WriteHeader(resp.StatusCode)
	// The body streams through (a download may be large): the writer is
	// wrapped, not the body, so the mux body's WriteTo still applies.
	ew := &errWriter{w: w}
	_, err := io.Copy(ew, resp.Body)
	if err == nil || ctx.Err() != nil || isClosed(err) {
		return
	}
	log.Warn("relayed answer cut", "from", origin, "err", err)
	if ew.err == nil {
		// pvedaemon's answer broke off: the client's must too.
		if aw, ok := w.(*auditWriter); ok {
			aw.cut = true
		} else {
			panic(http.ErrAbortHandler)
		}
	}
}

// errWriter remembers the error of the writer it wraps, so a failed copy
// can tell a failed write (the client) from a failed read (pvedaemon).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

func shortErr(err error) string {
	if err == context.DeadlineExceeded {
		return "timeout"
	}
	var op *net.OpError
	if ok := asOpError(err, &op); ok {
		return op.Err.Error()
	}
	return err.Error()
}

// TokenCheckPath is pvedaemon's internal endpoint (outside /api2, never
// forwarded from outside) where pveproxy asks whether an API token secret is
// valid: the secrets live in the root-only priv/token.cfg, as PVE's pveproxy
// asks pmxcfs (running as root) the same question.
const TokenCheckPath = "/internal/token-check"

// PostForm sends a form to path on pvedaemon (an internal endpoint such as
// the token check) over the same connections as forwarded calls, and
// returns the answer's status; the answer's body is discarded.
func (f *Forwarder) PostForm(ctx context.Context, path string, form url.Values) (int, error) {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	resp, err := f.send(ctx, http.MethodPost, path, f.addr, h, []byte(form.Encode()))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// NodeProxy forwards a call for another node of the cluster to that node's
// pveproxy (PVE's proxyto). pveproxy implements it.
type NodeProxy interface {
	// Known reports whether node is a member of the cluster.
	Known(node string) bool
	// ForwardToNode sends the call to node and relays its answer.
	ForwardToNode(w http.ResponseWriter, r *http.Request, body []byte, id Identity, node string)
}

// NodeHeader returns the header fields of a call forwarded to another
// node: the caller's credentials and CSRF token as for pvedaemon (the
// remote node authenticates again), PVEDisableProxy against loops. The
// client address is not passed: the remote pveproxy does not trust it.
func NodeHeader(r *http.Request, id Identity) http.Header {
	h := forwardHeader(r, id, netip.Addr{})
	delete(h, HeaderClientIP)
	return h
}
