package replication

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
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
	"github.com/pvenode/pvenode/pkg/storage"
	"github.com/pvenode/pvenode/pkg/ticket"
	"github.com/pvenode/pvenode/pkg/tlsconf"
)

// SendStats tell how a disk went over.
type SendStats struct {
	// Incremental is set when only the chunks that differ from the
	// target's replica were sent.
	Incremental bool
	// Chunks and Changed count the image's chunks and the ones sent.
	Chunks, Changed int64
	// Bytes is the length of the data sent (the image, or the delta).
	Bytes int64
}

// HTTPSender sends replicas to the target node's API
// (POST /nodes/{node}/storage/{storage}/pvenode-replica) over TLS with the
// node handshake: this node's certificate as client certificate, the
// target's certificate pinned from the config root, and a root@pam ticket.
// When the target holds a replica with checksums (every replica it
// imported has them), only the chunks that differ go over.
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

// nodeConn is one target node, ready for calls.
type nodeConn struct {
	node     string
	addr     string
	client   *http.Client
	tk, csrf string
	idle     time.Duration
	tr       *http.Transport
}

func (s *HTTPSender) connect(ctx context.Context, node string) (*nodeConn, error) {
	addr, err := s.Addr(node)
	if err != nil {
		return nil, err
	}
	dir, err := s.Root.Path(filepath.Join("nodes", s.Node))
	if err != nil {
		return nil, err
	}
	own, err := tls.LoadX509KeyPair(filepath.Join(dir, "pve-ssl.pem"), filepath.Join(dir, "pve-ssl.key"))
	if err != nil {
		return nil, fmt.Errorf("this node's certificate: %w", err)
	}
	pins := tlsconf.NodeCertFingerprints(s.Root.ReadFile, node)
	if len(pins) == 0 {
		return nil, fmt.Errorf("no certificate of node '%s' in the config root", node)
	}
	tk, csrf, err := s.Ticket(ctx, "root@pam")
	if err != nil {
		return nil, err
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
		MaxIdleConnsPerHost:   1,
	}
	return &nodeConn{node: node, addr: addr, client: &http.Client{Transport: tr}, tk: tk, csrf: csrf, idle: idle, tr: tr}, nil
}

func (c *nodeConn) close() { c.tr.CloseIdleConnections() }

// call makes one API call on the node and decodes its data into out.
// A body is sent with its length (pveproxy, like PVE's, takes no chunked
// bodies); a transfer that makes no progress for the idle time is given up.
func (c *nodeConn) call(ctx context.Context, method, path string, query url.Values, body io.Reader, length int64, ctype string, out any) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := url.URL{Scheme: "https", Host: c.addr, Path: "/api2/json/nodes/" + url.PathEscape(c.node) + path, RawQuery: query.Encode()}
	var rd io.Reader
	if body != nil {
		pr := &progressReader{r: body}
		pr.touch()
		go watchProgress(ctx, pr, c.idle, cancel)
		rd = pr
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.ContentLength = length
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Cookie", ticket.CookieHeader(c.tk))
	req.Header.Set("CSRFPreventionToken", c.csrf)
	req.Header.Set(api.HeaderDisableProxy, "1")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	err = api.DecodeAnswer(resp.StatusCode, resp.Status, answer, out)
	var ae *api.AnswerError
	if errors.As(err, &ae) {
		ae.Message = fmt.Sprintf("node '%s': %s", c.node, ae.Message)
	}
	return err
}

func watchProgress(ctx context.Context, p *progressReader, idle time.Duration, cancel func()) {
	t := time.NewTicker(idle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(p.last()) > idle {
				cancel()
				return
			}
		}
	}
}

// replicaSums is what the target answers of its replica.
type replicaSums struct {
	Exists int    `json:"exists"`
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
	Sums   string `json:"sums"`
}

// Send writes the image src (size bytes) as volname of storage sid on
// node: the chunks that differ from the node's replica when it has one
// this sync can build on, else the whole image.
func (s *HTTPSender) Send(ctx context.Context, node, sid, volname string, size int64, src io.ReaderAt) (SendStats, error) {
	c, err := s.connect(ctx, node)
	if err != nil {
		return SendStats{}, err
	}
	defer c.close()
	path := "/storage/" + url.PathEscape(sid) + "/pvenode-replica"
	var have replicaSums
	if err := c.call(ctx, http.MethodGet, path, url.Values{"volume": {volname}}, nil, 0, "", &have); err != nil {
		return SendStats{}, err
	}
	st, err := send(ctx, c, path, volname, size, src, have)
	var ae *api.AnswerError
	if st.Incremental && errors.As(err, &ae) && ae.Status == http.StatusConflict {
		// The replica changed since its checksums were read: send it whole.
		return send(ctx, c, path, volname, size, src, replicaSums{})
	}
	return st, err
}

func send(ctx context.Context, c *nodeConn, path, volname string, size int64, src io.ReaderAt, have replicaSums) (SendStats, error) {
	st := SendStats{Chunks: (size + storage.ChunkSize - 1) / storage.ChunkSize}
	fields := map[string]string{"volume": volname, "size": strconv.FormatInt(size, 10)}
	data, length := io.Reader(io.NewSectionReader(src, 0, size)), size
	st.Changed = st.Chunks
	if have.Exists == 1 && have.Size == size {
		sums, err := base64.StdEncoding.DecodeString(have.Sums)
		if err != nil {
			return st, fmt.Errorf("node '%s': checksums: %w", c.node, err)
		}
		changed, dl, err := storage.DeltaPlan(src, size, sums)
		if err != nil {
			return st, err
		}
		st.Incremental, st.Changed = true, int64(len(changed))
		data, length = storage.DeltaReader(src, size, changed), dl
		fields["delta"] = have.Digest
	}
	st.Bytes = length
	body, blen, ctype, err := multipartBody(fields, filepath.Base(volname)+".raw", data, length)
	if err != nil {
		return st, err
	}
	return st, c.call(ctx, http.MethodPost, path, nil, body, blen, ctype, nil)
}

// multipartBody is a multipart/form-data body of the fields and one file
// part of length bytes, with its total length.
func multipartBody(fields map[string]string, filename string, data io.Reader, length int64) (io.Reader, int64, string, error) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	for _, k := range []string{"volume", "size", "delta"} {
		if v, ok := fields[k]; ok {
			if err := mw.WriteField(k, v); err != nil {
				return nil, 0, "", err
			}
		}
	}
	if _, err := mw.CreateFormFile("filename", filename); err != nil {
		return nil, 0, "", err
	}
	trailer := "\r\n--" + mw.Boundary() + "--\r\n"
	total := int64(head.Len()) + length + int64(len(trailer))
	return io.MultiReader(&head, &exactReader{r: data, left: length}, strings.NewReader(trailer)), total, mw.FormDataContentType(), nil
}

// progressReader is a request body; it notes when data last moved.
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
