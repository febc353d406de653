package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/loginguard"

	"github.com/pvenode/pvenode/pkg/audit"
	"github.com/pvenode/pvenode/pkg/reqinfo"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Mode says which daemon a Server runs in.
type Mode int

const (
	// ModeProxy is pveproxy: unprivileged; it authenticates, checks CSRF and
	// permissions, answers unprotected methods and forwards protected ones.
	ModeProxy Mode = iota
	// ModeDaemon is pvedaemon: root on loopback; it runs every method, trusts
	// the client address pveproxy passes and skips CSRF as PVE does.
	ModeDaemon
)

// Authenticator verifies credentials and answers privilege questions. It is
// implemented by the access package.
type Authenticator interface {
	// AuthenticateTicket returns the user id of a valid login ticket whose
	// user exists, is enabled and not expired.
	AuthenticateTicket(ticket string) (userid string, err error)
	// AuthenticateToken verifies an API token and returns its owner.
	AuthenticateToken(ctx context.Context, tokenid, secret string) (userid string, err error)
	// VerifyCSRF checks a CSRFPreventionToken for userid.
	VerifyCSRF(userid, token string) error
	// CheckPrivs reports whether authid (a user or token id) has the
	// privileges on path: all of them, or any one when anyOf is set.
	CheckPrivs(authid, path string, privs []string, anyOf bool) bool
}

// tokenSourceAuthenticator is an Authenticator that also checks where an API
// token is used from (access.Authenticator: per-token allowed networks);
// the Server then uses it instead of AuthenticateToken.
type tokenSourceAuthenticator interface {
	AuthenticateTokenFrom(ctx context.Context, tokenid, secret string, client netip.Addr) (userid string, err error)
}

// Config are the collaborators and settings of a Server. All fields without
// a stated default are required.
type Config struct {
	Registry *Registry
	Auth     Authenticator
	Mode     Mode
	NodeName string
	Log      *slog.Logger
	// Forward runs protected methods in pvedaemon (ModeProxy only).
	Forward *Forwarder
	// Nodes forwards calls for other nodes of the cluster (proxyto) in
	// ModeProxy; nil: only this node exists.
	Nodes NodeProxy
	// AuthFailDelay is how long a 401 is held back (PVE: 3 s); default 3 s.
	AuthFailDelay time.Duration
	// MaxBody bounds request bodies (PVE: 512 KiB); default 512 KiB. For
	// uploads (Method.Upload) it bounds the parameters before the file.
	MaxBody int64
	// UploadIdleTimeout is how long an upload's body may stall;
	// default DefaultUploadIdleTimeout.
	UploadIdleTimeout time.Duration
	// ClientIP returns the client address of r; default: the peer address.
	ClientIP func(r *http.Request) netip.Addr
	// SetUser records the authenticated id for the access log; optional.
	SetUser func(r *http.Request, authid string)
	// Audit records authentication decisions and write calls
	// (docs/audit.md); nil records nothing.
	Audit *audit.Logger
	// FromProxy reports a call pveproxy forwarded (pvedaemon: the calls on
	// its Unix sockets); optional. pveproxy records those calls, so this
	// server does not; it passes its status and reason back to pveproxy in
	// the AuditHeader of a failed call's answer instead.
	FromProxy func(r *http.Request) bool
}

// Server is the http.Handler of /api2/.
type Server struct {
	cfg       Config
	tokenFrom tokenSourceAuthenticator // cfg.Auth, if it checks token sources
}

// NewServer returns a Server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Auth == nil || cfg.Log == nil || cfg.NodeName == "" {
		return nil, errors.New("api: Registry, Auth, Log and NodeName are required")
	}
	if cfg.Mode == ModeProxy && cfg.Forward == nil {
		return nil, errors.New("api: a proxy needs a Forwarder to pvedaemon")
	}
	if cfg.AuthFailDelay == 0 {
		cfg.AuthFailDelay = 3 * time.Second
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 512 << 10
	}
	if cfg.UploadIdleTimeout <= 0 {
		cfg.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = PeerAddr
	}
	s := &Server{cfg: cfg}
	s.tokenFrom, _ = cfg.Auth.(tokenSourceAuthenticator)
	return s, nil
}

// PeerAddr returns the peer address of r with IPv4-mapped addresses unmapped.
func PeerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Headers that carry forwarded identity between pveproxy and pvedaemon.
const (
	HeaderClientIP     = "PVEClientIP"
	HeaderDisableProxy = "PVEDisableProxy"
	HeaderCSRF         = "CSRFPreventionToken"
	CookieName         = "PVEAuthCookie"
)

// AuditHeader carries the API status and the reason of a failed forwarded
// call from pvedaemon back to pveproxy ("401 invalid token secret"), for
// pveproxy's audit line; pveproxy removes it from the answer it relays.
const AuditHeader = "Pvenode-Audit"

// ServeHTTP implements http.Handler for paths below /api2/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var oc outcome // on the stack: the hot path does not allocate for it
	format, segs, err := splitAPIPath(r.URL)
	if err != nil {
		s.fail(w, r, "json", err, &oc)
		return
	}
	if format != "json" && format != "extjs" && format != "spiceconfig" {
		s.fail(w, r, "json", Errorf(http.StatusNotImplemented, "no formatter for uri %s", r.URL.Path), &oc)
		return
	}
	m, pathParams, _ := s.cfg.Registry.Lookup(r.Method, segs)
	if m == nil {
		s.fail(w, r, format, Errorf(http.StatusNotImplemented, "Method '%s /%s' not implemented", r.Method, strings.Join(segs, "/")), &oc)
		return
	}
	data, total, err := s.serve(w, r, m, pathParams, &oc)
	if errors.Is(err, errForwarded) {
		s.record(r, &oc, oc.status)
		if oc.cut {
			// pvedaemon's answer broke off: cut the client's too, so a
			// chunked answer does not look complete.
			panic(http.ErrAbortHandler)
		}
		return
	}
	if err != nil {
		s.fail(w, r, format, err, &oc)
		return
	}
	if ws, ok := data.(*WebSocket); ok && m.WebSocket {
		if !wantsWebSocket(r) {
			data = ws.Data
		} else {
			if err := s.serveWebSocket(w, r, ws); err != nil {
				s.fail(w, r, format, err, &oc)
			}
			return
		}
	}
	if d, ok := asDownload(data); ok {
		// PVE sends a download whatever the format asked.
		if err := s.sendDownload(w, r, m, d); err != nil {
			s.fail(w, r, format, err, &oc)
		}
		return
	}
	if oc.reason != "" && s.fromProxy(r) {
		w.Header()[AuditHeader] = []string{"200 " + headerSafe(oc.reason)}
	}
	if format == "spiceconfig" {
		writeSpiceConfig(w, data)
	} else {
		writeData(w, format, data, total)
	}
	if oc.login || isWrite(r.Method) {
		s.record(r, &oc, http.StatusOK)
	}
}

// fail answers err and records the audit line the failure calls for.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, format string, err error, oc *outcome) {
	e := asError(err)
	if s.cfg.Audit != nil || s.cfg.FromProxy != nil {
		if oc.reason == "" {
			oc.reason = errorReason(e)
		}
		if s.fromProxy(r) {
			w.Header()[AuditHeader] = []string{strconv.Itoa(e.Status) + " " + headerSafe(oc.reason)}
		}
	}
	s.writeError(w, r, format, e)
	s.record(r, oc, e.Status)
}

// writeError renders err, and asks for its first line as the HTTP reason
// phrase, as PVE answers ("HTTP/1.1 401 No ticket").
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, format string, err error) {
	e := asError(err)
	if format != "extjs" {
		reqinfo.FromContext(r.Context()).SetReason(e.Message)
	}
	writeError(w, format, e)
}

// outcome is what the audit line of a call needs, gathered while it is
// served.
type outcome struct {
	user   string // authenticated id, or the one refused credentials claimed
	reason string // why the call was refused or failed, or a success's note
	login  bool   // POST /access/ticket
	status int    // final status of a forwarded call
	cut    bool   // a forwarded call's answer broke off while relayed
}

// isWrite reports whether an HTTP method changes something (POST, PUT,
// DELETE).
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// fromProxy reports whether r was forwarded by pveproxy (see
// Config.FromProxy).
func (s *Server) fromProxy(r *http.Request) bool {
	return s.cfg.FromProxy != nil && s.cfg.FromProxy(r)
}

// record writes the audit line of a call that ended with status, if it
// needs one: every login, every refused authentication (401), every
// permission denial (403) and every write call. Calls pveproxy forwarded
// are recorded by pveproxy, not here. See docs/audit.md.
func (s *Server) record(r *http.Request, oc *outcome, status int) {
	if s.cfg.Audit == nil {
		return
	}
	var kind string
	switch {
	case oc.login:
		kind = audit.KindLogin
	case status == http.StatusUnauthorized:
		kind = audit.KindAuth
	case status == http.StatusForbidden:
		kind = audit.KindPerm
	case isWrite(r.Method):
		kind = audit.KindWrite
	default:
		return
	}
	if s.fromProxy(r) {
		return
	}
	e := audit.Event{Kind: kind, Status: status, User: oc.user, Method: r.Method, Path: r.URL.Path, Reason: oc.reason}
	if info := reqinfo.FromContext(r.Context()); info != nil && s.cfg.Mode == ModeProxy {
		// the client as the access log has it, and the TCP peer
		e.Client, e.Peer = info.ClientIP().Unmap(), info.Peer().Addr().Unmap()
	} else {
		e.Client = s.cfg.ClientIP(r)
	}
	s.cfg.Audit.Record(e)
}

// errorReason is the reason of an API error for the audit line: the first
// line of its message, with the parameter errors.
func errorReason(e *Error) string {
	msg, _, _ := strings.Cut(e.Message, "\n")
	msg = strings.TrimSpace(msg)
	if len(e.Errors) == 0 {
		return msg
	}
	keys := make([]string, 0, len(e.Errors))
	for k := range e.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(msg, "."))
	for i, k := range keys {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(k + ": " + strings.TrimSpace(e.Errors[k]))
	}
	return b.String()
}

// headerSafe makes s fit a header value: control characters become
// blanks, and it is cut to audit.MaxReason bytes.
func headerSafe(s string) string {
	if len(s) > audit.MaxReason {
		s = s[:audit.MaxReason]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// auditWriter relays a forwarded call's answer and takes pvedaemon's
// AuditHeader out of it.
type auditWriter struct {
	http.ResponseWriter
	status int    // the status written
	note   string // pvedaemon's AuditHeader, if any
	cut    bool   // pvedaemon's answer broke off while relayed
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 {
		h := w.ResponseWriter.Header()
		if v := h[AuditHeader]; len(v) > 0 {
			w.note = v[0]
			delete(h, AuditHeader)
		}
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outcome returns the call's API status and reason: pvedaemon's when it
// sent an AuditHeader (the extjs format answers errors with HTTP 200),
// else the status written.
func (w *auditWriter) outcome() (int, string) {
	if code, reason, ok := strings.Cut(w.note, " "); ok {
		if n, err := strconv.Atoi(code); err == nil && n >= 100 && n <= 999 {
			return n, reason
		}
	}
	if w.status == 0 {
		return http.StatusOK, ""
	}
	return w.status, ""
}

// errForwarded says the response was written by the forwarder.
var errForwarded = errors.New("forwarded")

func (s *Server) serve(w http.ResponseWriter, r *http.Request, m *Method, pathParams map[string]string, oc *outcome) (any, *int, error) {
	arrived := time.Now()
	clientIP := s.cfg.ClientIP(r)
	write := isWrite(r.Method)
	oc.login = write && m.HTTP == http.MethodPost && m.Path == "/access/ticket"
	var body []byte
	var raw rawParams
	var up *Upload
	var err error
	if m.Upload {
		raw, up, err = s.readUpload(w, r, m)
	} else if body, err = readBody(r, s.cfg.MaxBody); err == nil {
		raw, err = parseBody(r.Header.Get("Content-Type"), body)
	}
	if err != nil {
		return nil, nil, err
	}
	if r.URL.RawQuery != "" {
		raw = addValues(raw, r.URL.Query())
	}
	for k, v := range pathParams {
		if raw == nil {
			raw = rawParams{}
		}
		if old, ok := raw[k]; ok && old != v {
			return nil, nil, ParamError(map[string]string{k: "parameter verification failed - conflicts with URI parameter"})
		}
		raw[k] = v
	}

	// allowtoken = 0 refuses API tokens before anything else, even for
	// methods that need no authentication (POST /access/ticket), as PVE.
	if m.NoToken && usesAPIToken(r) {
		if tokenid, _, ok := ticket.ParseAPIToken(r.Header.Get("Authorization")); ok {
			oc.user = tokenid
		}
		return nil, nil, noTokenError(r)
	}

	var id Identity
	if m.Permissions.User != "world" {
		// PVE skips the CSRF check for uploads: its web UI sends none
		// with them (a plain FormData XHR).
		id, err = s.authenticate(r, clientIP, oc, !m.Upload)
		if err != nil {
			s.delayAuthFailure(r.Context(), err, time.Time{})
			return nil, nil, err
		}
		oc.user = id.AuthID
		if s.cfg.SetUser != nil {
			s.cfg.SetUser(r, id.AuthID)
		}
	}
	if oc.login {
		oc.user = loginUser(raw)
	}

	params, perr := validate(m, raw)
	if perr != nil {
		return nil, nil, perr
	}

	proxyParam := m.ProxyTo
	if proxyParam == "" && m.RunOnNode {
		proxyParam = "node"
	}
	if proxyParam != "" {
		node := params.Get(proxyParam)
		if node != "" && node != "localhost" && node != s.cfg.NodeName {
			if s.cfg.Mode == ModeDaemon || r.Header.Get(HeaderDisableProxy) != "" {
				if s.cfg.Mode == ModeDaemon {
					return nil, nil, Errorf(http.StatusInternalServerError, "proxy not allowed")
				}
				return nil, nil, Errorf(http.StatusInternalServerError, "proxy loop detected")
			}
			if s.cfg.Nodes == nil || !s.cfg.Nodes.Known(node) {
				return nil, nil, Errorf(http.StatusInternalServerError,
					"hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", node, node)
			}
			if up != nil {
				return nil, nil, Errorf(http.StatusNotImplemented, "unable to proxy file uploads")
			}
			// PVE forwards before checking permissions: the node that
			// runs the call checks them.
			aw := &auditWriter{ResponseWriter: w}
			s.cfg.Nodes.ForwardToNode(aw, r, body, id, node)
			oc.status, oc.reason = aw.outcome()
			return nil, nil, errForwarded
		}
	}

	if m.Permissions.User != "world" {
		if err := s.checkPermissions(m, id, params); err != nil {
			return nil, nil, err
		}
	}

	if m.Protected && s.cfg.Mode == ModeProxy {
		aw := &auditWriter{ResponseWriter: w}
		if up != nil {
			s.cfg.Forward.ForwardUpload(aw, r, up, id, clientIP)
		} else {
			s.cfg.Forward.Forward(aw, r, body, id, clientIP)
		}
		oc.status, oc.reason = aw.outcome()
		oc.cut = aw.cut
		return nil, nil, errForwarded
	}

	ctx := r.Context()
	var note *audit.Note
	if write && (s.cfg.Audit != nil || s.cfg.FromProxy != nil) {
		ctx, note = audit.WithNote(ctx) // for a reason known deep inside (a login's)
	}
	req := &Request{Method: m, Params: params, Identity: id, ClientIP: clientIP, NodeName: s.cfg.NodeName, Upload: up}
	data, err := m.Handle(ctx, req)
	oc.reason = note.Reason() // for a success: what the call noted (a half login)
	if err != nil {
		e := asError(err)
		s.delayAuthFailure(r.Context(), e, arrived)
		if e.Status >= 500 {
			s.cfg.Log.Error("api call failed", "method", m.HTTP, "path", m.Path, "err", strings.TrimSpace(e.Message))
		}
		return nil, nil, e
	}
	if l, ok := data.(List); ok {
		t := l.Total
		return l.Data, &t, nil
	}
	return data, nil, nil
}

// List is a handler result that sets the envelope's total field.
type List struct {
	Data  any
	Total int
}

// loginUser is the user id a login names: username, with "@realm" when
// realm is given.
func loginUser(raw rawParams) string {
	str := func(k string) string {
		switch v := raw[k].(type) {
		case string:
			return v
		case []string:
			if len(v) > 0 {
				return v[0]
			}
		}
		return ""
	}
	if realm := str("realm"); realm != "" {
		return str("username") + "@" + realm
	}
	return str("username")
}

// auditDetail is implemented by authentication errors that know the user
// the credentials claimed and the reason of the refusal
// (access.AuthError).
type auditDetail interface {
	AuditDetail() (user, reason string)
}

// refused records in oc why authentication failed: err's detail, if it has
// one, else reason and user.
func refused(oc *outcome, err error, user, reason string) {
	var d auditDetail
	if errors.As(err, &d) {
		u, why := d.AuditDetail()
		if u != "" {
			user = u
		}
		if why != "" {
			reason = why
		}
	} else if err != nil {
		reason = err.Error()
	}
	oc.user, oc.reason = user, reason
}

// authenticate identifies the caller from the cookie, the Authorization
// header ticket or an API token, in PVE's order, checking a ticket's CSRF
// token in pveproxy for writes when csrf is set. On failure it records the
// reason in oc.
func (s *Server) authenticate(r *http.Request, clientIP netip.Addr, oc *outcome, csrf bool) (Identity, error) {
	tk := ""
	if c := r.Header.Get("Cookie"); c != "" {
		tk, _ = ticket.ExtractCookie(c, CookieName)
	}
	authz := r.Header.Get("Authorization")
	if tk == "" && authz != "" {
		tk, _ = ticket.ExtractCookie(authz, CookieName)
	}
	if tk != "" {
		userid, err := s.cfg.Auth.AuthenticateTicket(tk)
		if err != nil {
			s.logAuthFailure("invalid ticket", err)
			refused(oc, err, "", "invalid ticket")
			return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgAuthFailed}
		}
		if csrf && s.cfg.Mode == ModeProxy && r.Method != http.MethodGet {
			csrf := r.Header.Get(HeaderCSRF)
			if err := s.cfg.Auth.VerifyCSRF(userid, csrf); err != nil {
				if csrf == "" {
					refused(oc, nil, userid, "no CSRF prevention token")
				} else {
					refused(oc, nil, userid, "invalid CSRF prevention token")
				}
				return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgBadCSRF}
			}
		}
		return Identity{AuthID: userid, UserID: userid, Ticket: tk}, nil
	}
	if authz != "" {
		if tokenid, secret, ok := ticket.ParseAPIToken(authz); ok {
			var userid string
			var err error
			if s.tokenFrom != nil {
				userid, err = s.tokenFrom.AuthenticateTokenFrom(r.Context(), tokenid, secret, clientIP)
			} else {
				userid, err = s.cfg.Auth.AuthenticateToken(r.Context(), tokenid, secret)
			}
			if err != nil {
				s.logAuthFailure("invalid token '"+tokenid+"'", err)
				refused(oc, err, tokenid, "invalid token")
				return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgAuthFailed}
			}
			return Identity{AuthID: tokenid, UserID: userid, TokenID: tokenid, TokenSecret: secret}, nil
		}
	}
	refused(oc, nil, "", "no credentials")
	return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgNoTicket}
}

// usesAPIToken reports whether r authenticates with an API token: it has a
// PVEAPIToken Authorization and no ticket.
func usesAPIToken(r *http.Request) bool {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return false
	}
	if _, ok := ticket.ExtractCookie(r.Header.Get("Cookie"), CookieName); ok {
		return false
	}
	if _, ok := ticket.ExtractCookie(authz, CookieName); ok {
		return false
	}
	_, _, ok := ticket.ParseAPIToken(authz)
	return ok
}

func noTokenError(r *http.Request) *Error {
	return &Error{Status: http.StatusForbidden, Message: fmt.Sprintf(
		"Permission check failed (URI '%s' not available with API token, need proper ticket.)\n", r.URL.Path)}
}

// logAuthFailure writes PVE's line for credentials refused outside a
// login (pveproxy's auth_handler: a warning "authentication failure:
// <reason>", which fail2ban's proxmox filter does not count); the detail
// goes to the debug log.
func (s *Server) logAuthFailure(what string, err error) {
	s.cfg.Log.Warn("authentication failure: "+what, loginguard.LineKey, true)
	s.cfg.Log.Debug("credentials refused", "what", what, "err", err)
}

// delayAuthFailure holds a 401 back as PVE does, without blocking other
// requests: a failed authentication for AuthFailDelay, a 401 from a handler
// (a failed login) until AuthFailDelay after the request arrived (since
// zero: a flat delay). A handler that already waited (the login guard)
// adds nothing.
func (s *Server) delayAuthFailure(ctx context.Context, err error, since time.Time) {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		return
	}
	d := s.cfg.AuthFailDelay
	if !since.IsZero() {
		d -= time.Since(since)
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.Body == nil || r.Method == http.MethodGet {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, Errorf(http.StatusNotImplemented, "for data too large")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "unable to read request body: %v", err)
	}
	if int64(len(b)) > max {
		return nil, Errorf(http.StatusNotImplemented, "for data too large")
	}
	return b, nil
}

// splitAPIPath splits /api2/<format>/<path> into the format and the decoded
// path segments.
func splitAPIPath(u *url.URL) (string, []string, error) {
	p := u.EscapedPath()
	rest, ok := strings.CutPrefix(p, "/api2/")
	if !ok {
		return "", nil, Errorf(http.StatusNotImplemented, "no such uri")
	}
	format, rest, _ := strings.Cut(rest, "/")
	if format == "" {
		return "", nil, Errorf(http.StatusNotImplemented, "no such uri")
	}
	var segs []string
	for _, seg := range strings.Split(strings.Trim(rest, "/"), "/") {
		if seg == "" {
			continue
		}
		d, err := url.PathUnescape(seg)
		if err != nil {
			return "", nil, Errorf(http.StatusBadRequest, "malformed path segment %q", seg)
		}
		segs = append(segs, d)
	}
	return format, segs, nil
}

// bodyReader rewinds a body already read, for the forwarder.
func bodyReader(b []byte) io.Reader { return bytes.NewReader(b) }
