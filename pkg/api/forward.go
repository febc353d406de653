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

	"github.com/pvenode/pvenode/pkg/reqinfo"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Forwarder passes protected calls from pveproxy to pvedaemon over loopback
// HTTP, with the headers PVE uses: PVEDisableProxy, PVEClientIP, the caller's
// credentials re-encoded (ticket as the PVEAuthCookie cookie, token as
// "PVEAPIToken <urlencoded>"), the CSRF token and Host. Unlike PVE, which
// opens a connection per call, it keeps a small pool of idle connections.
type Forwarder struct {
	addr   string // host:port of pvedaemon
	client *loopClient
	log    *slog.Logger
}

// NewForwarder returns a Forwarder to the pvedaemon at addr (127.0.0.1:85),
// reached through its Unix socket when socket is set and can be connected
// to (cheaper than loopback TCP, and reachable by root and www-data only).
// Calls time out after timeout (PVE: 30 s) unless the client goes first.
func NewForwarder(addr, socket string, timeout time.Duration, log *slog.Logger) *Forwarder {
	return &Forwarder{
		addr:   addr,
		client: &loopClient{socket: socket, addr: addr, dialTimeout: 5 * time.Second, timeout: timeout},
		log:    log,
	}
}

// Close drops idle connections.
func (f *Forwarder) Close() { f.client.closeIdle() }

// hopHeaders are not relayed from pvedaemon's answer.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Proxy-Connection": true, "Content-Length": true,
}

// Forward sends the call to pvedaemon and relays its answer.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, body []byte, id Identity, clientIP netip.Addr) {
	u := "http://" + f.addr + r.URL.RequestURI()
	ctx := r.Context()
	req, err := http.NewRequestWithContext(ctx, r.Method, u, bodyReader(body))
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, err.Error()+"\n")
		return
	}
	req.ContentLength = int64(len(body))
	h := req.Header
	if ct := r.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set(HeaderDisableProxy, "true")
	h.Set(HeaderClientIP, clientIP.String())
	switch {
	case id.Ticket != "":
		h.Set("Cookie", ticket.CookieHeader(id.Ticket))
	case id.TokenID != "":
		h.Set("Authorization", ticket.FormatTokenHeader(id.TokenID, id.TokenSecret))
	}
	if c := r.Header.Get(HeaderCSRF); c != "" {
		h.Set(HeaderCSRF, c)
	}
	req.Host = r.Host
	// Compression happens once, at the edge (pveproxy), not on loopback.
	h.Set("Accept-Encoding", "identity")

	resp, err := f.client.do(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		f.log.Error("forward to pvedaemon failed", "addr", f.addr, "err", err)
		WriteError(w, r, http.StatusInternalServerError, "proxy request to pvedaemon failed: "+shortErr(err)+"\n")
		return
	}
	defer resp.Body.Close()
	out := w.Header()
	for k, vs := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		if k == "Location" {
			for i, v := range vs {
				vs[i] = strings.TrimPrefix(v, "http://"+f.addr)
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
	if _, err := io.Copy(w, resp.Body); err != nil && ctx.Err() == nil && !isClosed(err) {
		f.log.Warn("relay from pvedaemon cut", "err", err)
	}
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
	body := []byte(form.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.addr+path, bodyReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.do(ctx, req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
