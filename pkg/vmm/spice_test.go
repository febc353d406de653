package vmm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/tlsconf/tlstest"
)

// spiceLink runs the SPICE link handshake of a main channel against addr
// over TLS verified with tc: SpiceLinkHeader ("REDQ", 2.2) + SpiceLinkMess,
// the SpiceLinkReply with the server's RSA key, the password encrypted with
// RSA-OAEP(SHA-1), and returns the link result (0: SPICE_LINK_ERR_OK).
func spiceLink(addr string, tc *tls.Config, password string) (uint32, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	le := binary.LittleEndian
	msg := make([]byte, 16+18)
	copy(msg, "REDQ")
	le.PutUint32(msg[4:], 2)   // major
	le.PutUint32(msg[8:], 2)   // minor
	le.PutUint32(msg[12:], 18) // size of SpiceLinkMess, no caps
	// connection_id 0, channel_type 1 (main), channel_id 0, no caps
	msg[16+4] = 1
	le.PutUint32(msg[16+14:], 18) // caps_offset
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return 0, fmt.Errorf("read link reply header: %w", err)
	}
	if string(hdr[:4]) != "REDQ" || le.Uint32(hdr[4:]) != 2 {
		return 0, fmt.Errorf("link reply header %q", hdr)
	}
	body := make([]byte, le.Uint32(hdr[12:]))
	if len(body) < 4+162+12 {
		return 0, fmt.Errorf("link reply of %d bytes", len(body))
	}
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, fmt.Errorf("read link reply: %w", err)
	}
	if e := le.Uint32(body); e != 0 {
		return 0, fmt.Errorf("link reply error %d", e)
	}
	pub, err := x509.ParsePKIXPublicKey(body[4 : 4+162])
	if err != nil {
		return 0, fmt.Errorf("link reply public key: %w", err)
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return 0, errors.New("link reply key is not RSA")
	}
	enc, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, rk, append([]byte(password), 0), nil)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write(enc); err != nil {
		return 0, err
	}
	res := make([]byte, 4)
	if _, err := io.ReadFull(conn, res); err != nil {
		return 0, fmt.Errorf("read link result: %w", err)
	}
	return le.Uint32(res), nil
}

func TestSpice(t *testing.T) {
	const vmid = 905
	m, cfg := setup(t, vmid, nil)
	nd := tlstest.NewNodeDir(t)
	m.cfg.SpiceKeyFile = filepath.Join(nd.Dir, "pve-ssl.key")
	m.cfg.SpiceCertFile = filepath.Join(nd.Dir, "pve-ssl.pem")
	m.cfg.SpiceCACertFile = filepath.Join(filepath.Dir(nd.Dir), "pve-root-ca.pem")
	cfg.Props["vga"] = "qxl"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A port in use is skipped.
	busy, err := m.spice.alloc("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m.spice.release(busy)

	if err := m.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer m.Stop(ctx, vmid, 10*time.Second)
	port, err := m.SpicePort(ctx, vmid)
	if err != nil {
		t.Fatal(err)
	}
	if port < SpicePortMin || port > SpicePortMax || port == busy {
		t.Fatalf("SpicePort = %d; want in %d-%d, not %d", port, SpicePortMin, SpicePortMax, busy)
	}
	if len(m.spice.reserved) != 0 {
		t.Errorf("reserved after start = %v; want none", m.spice.reserved)
	}

	addr := "127.0.0.1:" + strconv.Itoa(port)
	tc := nd.ClientConfig()
	if r, err := spiceLink(addr, tc, "anything"); err != nil || r == 0 {
		t.Errorf("link without password set = %d, %v; want refused", r, err)
	}
	if err := m.SetSpicePassword(ctx, vmid, "s3cret", "+30"); err != nil {
		t.Fatal(err)
	}
	if r, err := spiceLink(addr, tc, "wrong"); err != nil || r == 0 {
		t.Errorf("link with wrong password = %d, %v; want refused", r, err)
	}
	if r, err := spiceLink(addr, tc, "s3cret"); err != nil || r != 0 {
		t.Errorf("link with password = %d, %v; want 0 (ok)", r, err)
	}
	// An untrusted server certificate is refused by the client.
	if _, err := spiceLink(addr, &tls.Config{ServerName: "localhost"}, "s3cret"); err == nil {
		t.Error("link trusting the system roots succeeded; want a certificate error")
	}
	if err := m.SetSpicePassword(ctx, vmid, "s3cret", "now"); err != nil {
		t.Fatal(err)
	}
	if r, err := spiceLink(addr, tc, "s3cret"); err != nil || r == 0 {
		t.Errorf("link with expired password = %d, %v; want refused", r, err)
	}
}

func TestSpicePortsConcurrent(t *testing.T) {
	var s spicePorts
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.alloc("127.0.0.1")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[p] {
				t.Errorf("port %d allocated twice", p)
			}
			seen[p] = true
		}()
	}
	wg.Wait()
}
