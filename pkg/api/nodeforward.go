package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
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
	if isWebSocketUpgrade(r) {
		f.forwardUpgrade(w, r, id, node, t)
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

// isWebSocketUpgrade reports whether r asks for a WebSocket (a console's
// vncwebsocket).
func isWebSocketUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// webSocketHeaders are the handshake headers passed to the other node.
var webSocketHeaders = []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol"}

// forwardUpgrade sends a WebSocket call (a console of a guest or shell of
// another node; PVE tunnels those over SSH) to node's pveproxy over the
// node handshake, and once that node has switched protocols relays the
// two connections as they are until either side closes. The relay holds
// one 32 KiB buffer per direction and moves data only as fast as the
// slower side takes it.
func (f *NodeForwarder) forwardUpgrade(w http.ResponseWriter, r *http.Request, id Identity, node string, t NodeTarget) {
	own, err := f.cfg.Certificate()
	if err != nil {
		f.cfg.Log.Error("node certificate", "err", err)
		WriteError(w, r, StatusNodeTLS, "unable to load this node's certificate\n")
		return
	}
	d := &net.Dialer{Timeout: f.cfg.DialTimeout}
	ctx, cancel := context.WithTimeout(r.Context(), f.cfg.DialTimeout)
	raw, err := (&tls.Dialer{NetDialer: d, Config: tlsconf.NodeClientConfig(own, t.Pins)}).DialContext(ctx, "tcp", t.Addr)
	cancel()
	if err != nil {
		status, msg := nodeError(err)
		f.cfg.Log.Warn("proxy to node failed", "node", node, "addr", t.Addr, "err", err)
		WriteError(w, r, status, msg+"\n")
		return
	}
	backend := raw.(*tls.Conn)
	_ = backend.SetDeadline(time.Now().Add(f.cfg.Timeout))
	req := &http.Request{Method: r.Method, URL: &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: t.Addr, Header: NodeHeader(r, id)}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	for _, k := range webSocketHeaders {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	br := bufio.NewReader(backend)
	var resp *http.Response
	if err = req.Write(backend); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if err != nil {
		backend.Close()
		status, msg := nodeError(err)
		f.cfg.Log.Warn("proxy to node failed", "node", node, "addr", t.Addr, "err", err)
		WriteError(w, r, status, msg+"\n")
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		relayAnswer(w, r, resp, "https://"+t.Addr, f.cfg.Log)
		return
	}
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		backend.Close()
		WriteError(w, r, http.StatusInternalServerError, "websocket upgrade failed: "+err.Error()+"\n")
		return
	}
	_ = client.SetDeadline(time.Time{})
	_ = backend.SetDeadline(time.Time{})
	var hdr bytes.Buffer
	hdr.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for _, k := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol"} {
		if v := resp.Header.Get(k); v != "" && !strings.ContainsAny(v, "\r\n") {
			hdr.WriteString(k + ": " + v + "\r\n")
		}
	}
	hdr.WriteString("\r\n")
	if _, err := client.Write(hdr.Bytes()); err != nil {
		client.Close()
		backend.Close()
		return
	}
	go relayConns(client, cbuf.Reader, backend, br)
}

// relayConns copies between two connections (each read through its
// buffered reader, which may hold bytes already read) until either side
// ends, then closes both.
func relayConns(a net.Conn, ar *bufio.Reader, b net.Conn, br *bufio.Reader) {
	done := make(chan struct{}, 2)
	copyHalf := func(dst net.Conn, src io.Reader) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go copyHalf(b, ar)
	go copyHalf(a, br)
	<-done
	a.Close()
	b.Close()
	<-done
}
