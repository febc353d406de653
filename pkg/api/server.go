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
	"strings"
	"time"

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
	// AuthFailDelay is how long a 401 is held back (PVE: 3 s); default 3 s.
	AuthFailDelay time.Duration
	// MaxBody bounds request bodies (PVE: 512 KiB); default 512 KiB.
	MaxBody int64
	// ClientIP returns the client address of r; default: the peer address.
	ClientIP func(r *http.Request) netip.Addr
	// SetUser records the authenticated id for the access log; optional.
	SetUser func(r *http.Request, authid string)
}

// Server is the http.Handler of /api2/.
type Server struct {
	cfg Config
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
	if cfg.ClientIP == nil {
		cfg.ClientIP = PeerAddr
	}
	return &Server{cfg: cfg}, nil
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

// ServeHTTP implements http.Handler for paths below /api2/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format, segs, err := splitAPIPath(r.URL)
	if err != nil {
		s.writeError(w, r, "json", err)
		return
	}
	if format != "json" && format != "extjs" {
		s.writeError(w, r, "json", Errorf(http.StatusNotImplemented, "no formatter for uri %s", r.URL.Path))
		return
	}
	m, pathParams, _ := s.cfg.Registry.Lookup(r.Method, segs)
	if m == nil {
		s.writeError(w, r, format, Errorf(http.StatusNotImplemented, "Method '%s /%s' not implemented", r.Method, strings.Join(segs, "/")))
		return
	}
	data, total, err := s.serve(w, r, m, pathParams)
	if errors.Is(err, errForwarded) {
		return
	}
	if err != nil {
		s.writeError(w, r, format, err)
		return
	}
	writeData(w, format, data, total)
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

// errForwarded says the response was written by the forwarder.
var errForwarded = errors.New("forwarded")

func (s *Server) serve(w http.ResponseWriter, r *http.Request, m *Method, pathParams map[string]string) (any, *int, error) {
	clientIP := s.cfg.ClientIP(r)
	body, err := readBody(r, s.cfg.MaxBody)
	if err != nil {
		return nil, nil, err
	}
	raw, err := parseBody(r.Header.Get("Content-Type"), body)
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
		return nil, nil, noTokenError(r)
	}

	var id Identity
	if m.Permissions.User != "world" {
		id, err = s.authenticate(r, m)
		if err != nil {
			s.delayAuthFailure(r.Context(), err)
			return nil, nil, err
		}
		if s.cfg.SetUser != nil {
			s.cfg.SetUser(r, id.AuthID)
		}
	}

	params, perr := validate(m, raw)
	if perr != nil {
		return nil, nil, perr
	}

	if m.ProxyTo != "" {
		node := params.Get(m.ProxyTo)
		if node != "" && node != "localhost" && node != s.cfg.NodeName {
			if s.cfg.Mode == ModeDaemon || r.Header.Get(HeaderDisableProxy) != "" {
				if s.cfg.Mode == ModeDaemon {
					return nil, nil, Errorf(http.StatusInternalServerError, "proxy not allowed")
				}
				return nil, nil, Errorf(http.StatusInternalServerError, "proxy loop detected")
			}
			// Only this node exists until the cluster layer knows others.
			return nil, nil, Errorf(http.StatusInternalServerError,
				"hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", node, node)
		}
	}

	if m.Permissions.User != "world" {
		if err := s.checkPermissions(m, id, params); err != nil {
			return nil, nil, err
		}
	}

	if m.Protected && s.cfg.Mode == ModeProxy {
		s.cfg.Forward.Forward(w, r, body, id, clientIP)
		return nil, nil, errForwarded
	}

	req := &Request{Method: m, Params: params, Identity: id, ClientIP: clientIP, NodeName: s.cfg.NodeName}
	data, err := m.Handle(r.Context(), req)
	if err != nil {
		e := asError(err)
		s.delayAuthFailure(r.Context(), e)
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

// authenticate identifies the caller from the cookie, the Authorization
// header ticket or an API token, in PVE's order.
func (s *Server) authenticate(r *http.Request, m *Method) (Identity, error) {
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
			s.cfg.Log.Debug("ticket refused", "err", err)
			return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgAuthFailed}
		}
		if s.cfg.Mode == ModeProxy && r.Method != http.MethodGet {
			if err := s.cfg.Auth.VerifyCSRF(userid, r.Header.Get(HeaderCSRF)); err != nil {
				return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgBadCSRF}
			}
		}
		return Identity{AuthID: userid, UserID: userid, Ticket: tk}, nil
	}
	if authz != "" {
		if tokenid, secret, ok := ticket.ParseAPIToken(authz); ok {
			userid, err := s.cfg.Auth.AuthenticateToken(r.Context(), tokenid, secret)
			if err != nil {
				s.cfg.Log.Debug("token refused", "token", tokenid, "err", err)
				return Identity{}, &Error{Status: http.StatusUnauthorized, Message: MsgAuthFailed}
			}
			return Identity{AuthID: tokenid, UserID: userid, TokenID: tokenid, TokenSecret: secret}, nil
		}
	}
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

// delayAuthFailure holds a 401 back for AuthFailDelay, as PVE does, without
// holding anything but this request's goroutine; a client that goes away
// ends the wait.
func (s *Server) delayAuthFailure(ctx context.Context, err error) {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		return
	}
	t := time.NewTimer(s.cfg.AuthFailDelay)
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
