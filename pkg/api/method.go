package api

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// HandlerFunc runs one API method. It returns the value for the envelope's
// data field (nil for null), or an error; errors that are not *Error become
// HTTP 500 with the error text as message, as PVE does for a die.
type HandlerFunc func(ctx context.Context, req *Request) (any, error)

// Permissions is a method's permission declaration in PVE's form:
// User "all" (any authenticated user) or "world" (no authentication), or a
// Check expression such as ["perm", "/nodes/{node}", ["Sys.Audit"]].
// A method without User and Check may only be called by root@pam.
type Permissions struct {
	Description string
	User        string
	Check       []any
}

// Method is one API method, declared once.
type Method struct {
	Name        string // PVE's method name, e.g. "version"
	Path        string // path template, e.g. "/nodes/{node}/status"
	HTTP        string // GET, POST, PUT or DELETE
	Description string
	Protected   bool   // must run in pvedaemon (as root)
	ProxyTo     string // parameter naming the node the call must run on
	// RunOnNode sends a call for another node (its "node" parameter) to
	// that node, like ProxyTo, for the console methods PVE declares
	// without proxyto because it reaches the other node over SSH itself.
	// Not part of the schema.
	RunOnNode   bool
	NoToken     bool // allowtoken = 0: API tokens are refused
	Permissions Permissions
	// Params are the parameter properties; path placeholders must be among them.
	Params map[string]*Schema
	// AdditionalParams allows parameters not declared (PVE's
	// additionalProperties = 1); it is rare.
	AdditionalParams bool
	// Upload marks a file upload (PVE's storage upload): the body is
	// multipart/form-data whose parts before the file are parameters and
	// whose `filename` part is the file, streamed to the handler as
	// Request.Upload rather than read whole (see stream.go).
	Upload bool
	// DownloadAllowed lets the handler answer a Download, sent as the
	// answer's body instead of the JSON envelope (PVE's download_allowed;
	// see download.go).
	DownloadAllowed bool
	// TailParam makes the path's last placeholder take the rest of the
	// path, slashes included (PVE's fragmentDelimiter ''), as clients
	// send volume IDs such as "local:iso/x.iso" unencoded.
	TailParam bool
	// WebSocket lets the handler answer a *WebSocket: a GET asking for
	// "Upgrade: websocket" is then upgraded and relayed (see websocket.go).
	WebSocket bool
	Returns   *Schema
	Handle    HandlerFunc
}

// Request is what a handler gets: the validated parameters, the caller and
// the environment of the call.
type Request struct {
	Method   *Method
	Params   Params
	Identity Identity
	ClientIP netip.Addr
	NodeName string // this node
	// Upload is the file of a method declared with Upload; nil otherwise.
	Upload *Upload
}

// Identity is an authenticated caller.
type Identity struct {
	// AuthID is the user id, or the full token id for API tokens.
	AuthID string
	// UserID is the user the request acts for (the token's owner for tokens).
	UserID string
	// TokenSecret and Ticket are the credentials as presented, kept so a
	// forwarded call can present them again.
	Ticket      string
	TokenID     string
	TokenSecret string
}

// IsToken reports whether the caller used an API token.
func (id Identity) IsToken() bool { return id.TokenID != "" }

// Params are validated parameters: string values, or []string for arrays.
// Typed accessors convert on read; validation already guaranteed the type.
type Params map[string]any

// String returns the string value of name and whether it is set.
func (p Params) String(name string) (string, bool) {
	v, ok := p[name]
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case []string:
		return strings.Join(x, ","), true
	}
	return fmt.Sprint(v), true
}

// Has reports whether name is set.
func (p Params) Has(name string) bool {
	_, ok := p[name]
	return ok
}

// Get returns the string value of name, or "".
func (p Params) Get(name string) string {
	s, _ := p.String(name)
	return s
}

// Int returns the integer value of name, or def when it is not set.
func (p Params) Int(name string, def int64) int64 {
	s, ok := p.String(name)
	if !ok {
		return def
	}
	var v int64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return def
	}
	return v
}

// Bool returns the boolean value of name (validated as 0/1), or def.
func (p Params) Bool(name string, def bool) bool {
	s, ok := p.String(name)
	if !ok {
		return def
	}
	return s == "1"
}

// segments splits a path template or a path into its segments.
func segments(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// placeholder returns the name of a {name} segment.
func placeholder(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// DirIndex returns the handler of a directory index method: a list of
// {key: name} objects, one per child this build implements, as PVE's index
// methods answer (key is "subdir" or "name", as each method's schema links).
func DirIndex(key string, names ...string) HandlerFunc {
	out := make([]map[string]string, 0, len(names))
	for _, n := range names {
		out = append(out, map[string]string{key: n})
	}
	return func(context.Context, *Request) (any, error) { return out, nil }
}
