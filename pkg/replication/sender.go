package replication

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pvenode/pvenode/pkg/api"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// HTTPSender sends replicas to the target node's API
// (POST /nodes/{node}/storage/{storage}/pvenode-replica) over TLS with the
// node handshake: this node's certificate as client certificate, the
// target's certificate pinned from the config root, and a root@pam ticket.
type HTTPSender struct {
	Node string // this node
	Root *pvefs.Root
	// Addr returns the host:port of a node's pveproxy.
	Addr func(node string) (string, error)
	// Ticket issues a ticket and CSRF token for root@pam.
	Ticket func(ctx context.Context, userid string) (tk, csrf string, err error)
	// IdleTimeout bounds a stall of the transfer (no progress); default 60 s.
	IdleTimeout time.Duration
}

// Send streams size bytes of r as volname of storage sid on node.
func (s *HTTPSender) Send(ctx context.Context, node, sid, volname string, size int64, r io.Reader) error {
	addr, err := s.Addr(node)
	if err != nil {
		return err
	}
	dir, err := s.Root.Path(filepath.Join("nodes", s.Node))
	if err != nil {
		return err
	}
	own, err := tls.LoadX509KeyPair(filepath.Join(dir, "pve-ssl.pem"), filepath.Join(dir, "pve-ssl.key"))
	if err != nil {
		return fmt.Errorf("this node's certificate: %w", err)
	}
	pins := tlsconf.NodeCertFingerprints(s.Root.ReadFile, node)
	if len(pins) == 0 {
		return fmt.Errorf("no certificate of node '%s' in the config root", node)
	}
	tk, csrf, err := s.Ticket(ctx, "root@pam")
	if err != nil {
		return err
	}
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 60 * time.Second
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSClientConfig:       tlsconf.NodeClientConfig(&own, pins),
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute, // the target converts and syncs before answering
	}
	defer tr.CloseIdleConnections()
	// The body has a length (pveproxy, like PVE's, takes no chunked
	// bodies): the fields and the file part's header, the image, and the
	// closing boundary.
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	for _, kv := range [][2]string{{"volume", volname}, {"size", strconv.FormatInt(size, 10)}} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if _, err := mw.CreateFormFile("filename", filepath.Base(volname)+".raw"); err != nil {
		return err
	}
	trailer := "\r\n--" + mw.Boundary() + "--\r\n"
	length := int64(head.Len()) + size + int64(len(trailer))
	payload := io.MultiReader(&head, &exactReader{r: r, left: size}, strings.NewReader(trailer))
	u := url.URL{Scheme: "https", Host: addr,
		Path: "/api2/json/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(sid) + "/pvenode-replica"}
	// A transfer that makes no progress for the idle time is given up
	// (a target that stopped reading, a network that went away).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := &progressReader{r: payload}
	body.touch()
	go func() {
		t := time.NewTicker(idle / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if time.Since(body.last()) > idle {
					cancel()
					return
				}
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Cookie", ticket.CookieHeader(tk))
	req.Header.Set("CSRFPreventionToken", csrf)
	req.Header.Set(api.HeaderDisableProxy, "1")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var env struct {
			Message string            `json:"message"`
			Errors  map[string]string `json:"errors"`
		}
		_ = json.Unmarshal(answer, &env)
		msg := strings.TrimSpace(env.Message)
		if msg == "" {
			msg = resp.Status
		}
		for k, v := range env.Errors {
			msg += fmt.Sprintf("; %s: %s", k, v)
		}
		return fmt.Errorf("node '%s': %s", node, msg)
	}
	return nil
}

// progressReader is the request body; it notes when data last moved.
type progressReader struct {
	r  io.Reader
	at atomic.Int64
}

func (p *progressReader) touch()          { p.at.Store(time.Now().UnixNano()) }
func (p *progressReader) last() time.Time { return time.Unix(0, p.at.Load()) }

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.touch()
	}
	return n, err
}

// exactReader yields exactly left bytes of r, failing if r ends sooner.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("image ended %d bytes short", e.left)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}
