package httpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/pvenode/pvenode/pkg/reqinfo"
)

// PVE's limits and timeouts, used as defaults.
const (
	// MaxHeaderBytes is PVE's limit on the request header (8 KiB).
	MaxHeaderBytes = 8 << 10
	// MaxHeaderLines is PVE's limit on the number of request header lines.
	MaxHeaderLines = 64
	// MaxBody is PVE's limit on a request body that is not a multipart upload.
	MaxBody = 512 << 10
	// DefaultIdleTimeout is PVE's keep-alive idle timeout.
	DefaultIdleTimeout = 5 * time.Second
	// DefaultReadHeaderTimeout bounds reading one request header (and, as
	// net/http uses it, the TLS handshake).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 60 * time.Second
)

// ServerConfig configures NewServer. Handler is required; zero durations and
// sizes select the defaults above.
type ServerConfig struct {
	// Handler serves every request. NewServer wraps it so that each request
	// carries a fresh *reqinfo.Info in its context.
	Handler http.Handler
	// Log receives net/http's own messages (at warn); nil discards them.
	Log *slog.Logger
	// ReadHeaderTimeout: 0 = DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds header plus body: 0 = DefaultReadTimeout, negative =
	// none. A handler that legitimately reads for longer (a file upload)
	// lifts it for its request with
	// http.NewResponseController(w).SetReadDeadline(time.Time{}).
	ReadTimeout time.Duration
	// IdleTimeout between keep-alive requests: 0 = DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes: 0 = MaxHeaderBytes. net/http allows 4 KiB of slack on
	// top, so oversized headers up to that point reach Limits, which applies
	// PVE's exact count; beyond it net/http answers 431 itself.
	MaxHeaderBytes int
	// BaseContext, if set, returns the base context of requests accepted on
	// a listener (for example one cancelled when the daemon stops).
	BaseContext func(net.Listener) context.Context
}

// NewServer returns the *http.Server used by every daemon. There is no write
// timeout: downloads, task-log streams and console websockets run as long as
// they need; idle and read timeouts bound the client instead.
//
// HTTP/2 is disabled (Protocols is HTTP/1 only and TLSNextProto is an empty,
// non-nil map): PVE's server speaks HTTP/1.1 only, its clients (pvesh,
// proxmoxer, the GUI, other nodes' pveproxy) expect exactly that, and the
// per-connection behaviour PVE has (keep-alive limits, connection close after
// an error, websocket upgrade by hijacking) only exists in HTTP/1.1. TLS
// configurations handed to the listener must not offer "h2" in ALPN.
func NewServer(cfg ServerConfig) *http.Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := cfg.Handler
	if h == nil {
		h = http.NotFoundHandler()
	}
	rht := cfg.ReadHeaderTimeout
	if rht <= 0 {
		rht = DefaultReadHeaderTimeout
	}
	rt := cfg.ReadTimeout
	switch {
	case rt == 0:
		rt = DefaultReadTimeout
	case rt < 0:
		rt = 0
	}
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	mhb := cfg.MaxHeaderBytes
	if mhb <= 0 {
		mhb = MaxHeaderBytes
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Server{
		Handler:           requestInfo(h),
		ReadHeaderTimeout: rht,
		ReadTimeout:       rt,
		IdleTimeout:       idle,
		MaxHeaderBytes:    mhb,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       cfg.BaseContext,
		ConnContext:       connContext,
		Protocols:         &protos,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// connContext stores the connection's peer (IPv4-mapped addresses turned into
// plain IPv4) in a connection-level Info.
func connContext(ctx context.Context, c net.Conn) context.Context {
	info := reqinfo.New(peerOf(c.RemoteAddr()))
	if rc, ok := c.(*reasonConn); ok {
		info = info.WithReason(rc.setReason)
	}
	return reqinfo.NewContext(withTLSConn(ctx, c), info)
}

// requestInfo gives every request a clean Info, so a user or real IP learned
// by one request on a keep-alive connection does not leak into the next: the
// connection's Info is reset at the start of each request (HTTP/1.1 requests
// on a connection never overlap), which costs no allocation; a request
// without one (served by other means than NewServer's connections) gets a
// new Info.
func requestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ci := reqinfo.FromContext(r.Context()); ci != nil {
			ci.Reset()
			next.ServeHTTP(w, r)
			return
		}
		var peer netip.AddrPort
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			peer = normalize(ap)
		}
		ctx := reqinfo.NewContext(r.Context(), reqinfo.New(peer))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// peerOf returns the IP address and port of a, with IPv4-mapped IPv6
// addresses unmapped; the zero AddrPort if a is not an IP address.
func peerOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return normalize(a.AddrPort())
	case *net.UDPAddr:
		return normalize(a.AddrPort())
	case nil:
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return normalize(ap)
}

func normalize(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Shutdown stops srv gracefully: it stops accepting, waits for active
// requests until ctx is done, then closes whatever is left (hijacked
// connections are the owner's job, via srv.RegisterOnShutdown). It returns
// nil on a clean stop.
func Shutdown(ctx context.Context, srv *http.Server) error {
	if err := srv.Shutdown(ctx); err != nil {
		if cerr := srv.Close(); cerr != nil {
			return fmt.Errorf("shutdown: %w (close: %v)", err, cerr)
		}
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Chain wraps h in mws; the first middleware is the outermost, so
// Chain(h, a, b) serves a(b(h)).
func Chain(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}
