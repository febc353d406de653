package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// PVE's pseudo status codes for a call another node did not answer
// (AnyEvent::HTTP): no connection, a failed TLS handshake or request, and
// any other transport error.
const (
	StatusNodeConnect = 595
	StatusNodeTLS     = 596
	StatusNodeOther   = 599
)

// NodeTarget is where another node's pveproxy is.
type NodeTarget struct {
	// Addr is host:port of its pveproxy.
	Addr string
	// Online is the cluster's view of the node; an offline node is not
	// dialled.
	Online bool
	// Pins are the SHA-256 fingerprints its certificate may have (PVE:
	// nodes/NODE/pveproxy-ssl.pem, else pve-ssl.pem).
	Pins []string
}

// NodeForwarderConfig configures a NodeForwarder.
type NodeForwarderConfig struct {
	// Lookup returns the target of a member node; false for a node that is
	// not a member of the cluster.
	Lookup func(node string) (NodeTarget, bool)
	// Certificate returns this node's certificate, presented as client
	// certificate (nodes/NODE/pve-ssl.pem).
	Certificate func() (*tls.Certificate, error)
	// DialTimeout bounds the connection and TLS handshake (default 3 s,
	// so that an unreachable node fails fast); Timeout the whole call
	// (default 30 s, PVE's).
	DialTimeout, Timeout time.Duration
	Log                  *slog.Logger
}

// NodeForwarder sends calls for other nodes to their pveproxy over TLS
// with the node handshake (client certificate, pinned server certificate)
// and relays the answers. It implements NodeProxy.
type NodeForwarder struct {
	cfg NodeForwarderConfig

	mu      sync.Mutex
	clients map[string]*http.Client // by address and pins
}

// NewNodeForwarder returns a NodeForwarder.
func NewNodeForwarder(cfg NodeForwarderConfig) *NodeForwarder {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &NodeForwarder{cfg: cfg, clients: map[string]*http.Client{}}
}

// Known reports whether node is a member.
func (f *NodeForwarder) Known(node string) bool {
	_, ok := f.cfg.Lookup(node)
	return ok
}

// client returns the HTTP client for a target, built once per address and
// set of pins (a changed certificate gives a new client).
func (f *NodeForwarder) client(t NodeTarget) (*http.Client, error) {
	key := t.Addr + "|" + strings.Join(t.Pins, ",")
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c, nil
	}
	own, err := f.cfg.Certificate()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: f.cfg.DialTimeout}).DialContext,
		TLSClientConfig:       tlsconf.NodeClientConfig(own, t.Pins),
		TLSHandshakeTimeout:   f.cfg.DialTimeout,
		ResponseHeaderTimeout: f.cfg.Timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Drop clients of the same address with other pins.
	for k, old := range f.clients {
		if strings.HasPrefix(k, t.Addr+"|") {
			old.CloseIdleConnections()
			delete(f.clients, k)
		}
	}
	f.clients[key] = c
	return c, nil
}

// ForwardToNode sends the call to node's pveproxy and relays its answer.
func (f *NodeForwarder) ForwardToNode(w http.ResponseWriter, r *http.Request, body []byte, id Identity, node string) {
	t, ok := f.cfg.Lookup(node)
	if !ok {
		WriteError(w, r, http.StatusInternalServerError, "hostname lookup '"+node+"' failed - no such cluster node\n")
		return
	}
	if !t.Online {
		WriteError(w, r, StatusNodeConnect, "node '"+node+"' is offline\n")
		return
	}
	c, err := f.client(t)
	if err != nil {
		f.cfg.Log.Error("node certificate", "err", err)
		WriteError(w, r, StatusNodeTLS, "unable to load this node's certificate\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.Timeout)
	defer cancel()
	u := url.URL{Scheme: "https", Host: t.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, err.Error()+"\n")
		return
	}
	req.ContentLength = int64(len(body))
	req.Header = NodeHeader(r, id)
	resp, err := c.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		status, msg := nodeError(err)
		f.cfg.Log.Warn("proxy to node failed", "node", node, "addr", t.Addr, "err", err)
		WriteError(w, r, status, msg+"\n")
		return
	}
	relayAnswer(w, r, resp, "https://"+t.Addr, f.cfg.Log)
}

// nodeError maps a transport error to PVE's pseudo status and a message.
func nodeError(err error) (int, string) {
	var op *net.OpError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cv):
		return StatusNodeTLS, "node certificate check failed: " + cv.Err.Error()
	case errors.As(err, &op) && op.Op == "dial":
		return StatusNodeConnect, shortErr(op.Err)
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "certificate"):
		return StatusNodeTLS, shortErr(err)
	case errors.Is(err, context.DeadlineExceeded):
		return StatusNodeOther, "Connection timed out"
	}
	return StatusNodeOther, shortErr(err)
}
