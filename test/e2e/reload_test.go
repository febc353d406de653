package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// TestReloadUnderLoad reloads pveproxy ten times, swapping the certificate
// once, while eight clients send requests (half on keep-alive connections,
// half on a new connection each time): not one request may fail.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{proxyFG: true})
	ca := tlstest.NewCA(t)
	n.trust(ca.Cert) // before the clients are made: they must accept the swapped certificate
	login := n.client(t, clientOpts{})
	login.mustLogin(adminUser, h.adminPW)

	const (
		workers     = 8
		loadFor     = 5 * time.Second
		maxRequests = 1500 // per worker
		pause       = 2 * time.Millisecond
		reloads     = 10
	)
	ctx, cancel := context.WithTimeout(context.Background(), loadFor)
	defer cancel()

	var ok, failed atomic.Int64
	var mu sync.Mutex // guards firstErrs
	var firstErrs []string
	var wg sync.WaitGroup
	defer func() { // also when a reload fails the test
		cancel()
		wg.Wait()
	}()
	for w := range workers {
		keepAlive := w%2 == 0
		c := n.client(t, clientOpts{keepAlive: keepAlive})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxRequests && ctx.Err() == nil; i++ {
				req, _ := http.NewRequest(http.MethodGet, c.base+"/api2/json/version", nil)
				req.Header.Set("Cookie", "PVEAuthCookie="+login.ticket)
				resp, err := c.hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("worker %d (keep-alive %v) request %d: %v", w, keepAlive, i, err))
					}
					mu.Unlock()
				} else {
					ok.Add(1)
				}
				time.Sleep(pause)
			}
		}()
	}

	start := time.Now()
	done := 0
	for i := range reloads {
		if i == reloads/2 {
			leaf := ca.Issue(t, tlstest.RSA, "localhost", "127.0.0.1", "::1", nodeName)
			n.writeServiceFile(t, filepath.Join(n.nodeDir(), "pveproxy-ssl.key"), leaf.KeyPEM)
			n.writeServiceFile(t, filepath.Join(n.nodeDir(), "pveproxy-ssl.pem"), leaf.CertPEM)
		}
		n.mustReload(t)
		done++
		// spread the reloads over the load period
		next := start.Add(time.Duration(i+1) * loadFor / (reloads + 1))
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	wg.Wait()

	t.Logf("reloads: %d; requests: %d ok, %d failed", done, ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErrs)
	}
	if ok.Load() == 0 {
		t.Error("no request succeeded")
	}
	if st, err := handshake(n, tls12Only(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)); err != nil {
		t.Errorf("handshake after the reloads: %v", err)
	} else if st.PeerCertificates[0].Issuer.CommonName != ca.Cert.Subject.CommonName {
		t.Errorf("served certificate issued by %q after the swap; want the test CA", st.PeerCertificates[0].Issuer.CommonName)
	}
}
