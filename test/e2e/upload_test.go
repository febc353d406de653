package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const uploadBoundary = "----pvenodeE2EUpload4f3a9c"

// uploadBody returns a multipart upload body with the content field and
// size bytes of file under name, and its length.
func uploadBody(fields [][2]string, name string, file io.Reader, size int64) (io.Reader, int64) {
	var head bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", uploadBoundary, f[0], f[1])
	}
	fmt.Fprintf(&head, "--%s\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"%s\"\r\n"+
		"Content-Type: application/octet-stream\r\n\r\n", uploadBoundary, name)
	tail := "\r\n--" + uploadBoundary + "--\r\n"
	n := int64(head.Len()) + size + int64(len(tail))
	return io.MultiReader(&head, io.LimitReader(file, size), strings.NewReader(tail)), n
}

// upload posts a body to the storage local of the node through pveproxy,
// without a CSRF token, as PVE's web UI does.
func (c *client) upload(b io.Reader, n int64) *resp {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/api2/json/nodes/"+nodeName+"/storage/local/upload", b)
	if err != nil {
		c.t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+uploadBoundary)
	req.Header.Set("Cookie", "PVEAuthCookie="+url.QueryEscape(c.ticket))
	hc := &http.Client{Transport: c.hc.Transport}
	hr, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("upload: %v", err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := &resp{status: hr.StatusCode, header: hr.Header, body: raw}
	var env struct {
		Data    json.RawMessage   `json:"data"`
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		c.t.Fatalf("upload answer %q: %v", raw, err)
	}
	r.data, r.message, r.errors = env.Data, env.Message, env.Errors
	return r
}

// waitTask polls a task until it stopped and returns its exit status and
// log.
func (c *client) waitTask(upid string) (string, []string) {
	c.t.Helper()
	base := "/api2/json/nodes/" + nodeName + "/tasks/" + url.PathEscape(upid)
	deadline := time.Now().Add(time.Minute)
	for {
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		r := c.get(base + "/status")
		decode(c.t, r, &st)
		if st.Status == "stopped" {
			var lines []struct {
				T string `json:"t"`
			}
			decode(c.t, c.get(base+"/log"), &lines)
			var out []string
			for _, l := range lines {
				out = append(out, l.T)
			}
			return st.ExitStatus, out
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("task %s still %s", upid, st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakRSS is a process's VmHWM in KiB.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestUploadThroughProxy: a 256 MiB ISO image uploaded through pveproxy
// streams into the storage (checksum verified by the imgcopy task) while
// neither daemon's resident memory grows by more than a small amount.
func TestUploadThroughProxy(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	const size = 256 << 20
	hs := sha256.New()
	if _, err := io.Copy(hs, io.LimitReader(rand.NewChaCha8([32]byte{1}), size)); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(hs.Sum(nil))
	proxyPID, daemonPID := n.pid(t, "pveproxy"), n.pid(t, "pvedaemon")
	proxyBefore, daemonBefore := peakRSS(t, proxyPID), peakRSS(t, daemonPID)

	start := time.Now()
	b, bn := uploadBody([][2]string{{"content", "iso"}, {"checksum-algorithm", "sha256"}, {"checksum", want}},
		"big.iso", rand.NewChaCha8([32]byte{1}), size)
	r := c.upload(b, bn)
	elapsed := time.Since(start)
	if r.status != http.StatusOK {
		t.Fatalf("upload: %d %q %v", r.status, r.message, r.errors)
	}
	var upid string
	decode(t, r, &upid)
	status, log := c.waitTask(upid)
	if status != "OK" || !strings.HasPrefix(upid, "UPID:"+nodeName+":") || !strings.Contains(upid, ":imgcopy::"+adminUser+":") {
		t.Fatalf("task %s: %s\n%s", upid, status, strings.Join(log, "\n"))
	}
	dest := filepath.Join(n.prefix, "var/lib/vz/template/iso/big.iso")
	if !slicesContain(log, "calculating checksum...OK, checksum verified") || !slicesContain(log, "target file: "+dest) ||
		!slicesContain(log, "file size is: "+strconv.Itoa(size)) {
		t.Errorf("task log:\n%s", strings.Join(log, "\n"))
	}
	if fi, err := os.Stat(dest); err != nil || fi.Size() != size {
		t.Fatalf("uploaded file: %v %v", fi, err)
	}
	proxyAfter, daemonAfter := peakRSS(t, proxyPID), peakRSS(t, daemonPID)
	t.Logf("256 MiB through pveproxy in %v (%.0f MiB/s); peak RSS: pveproxy %d -> %d KiB, pvedaemon %d -> %d KiB",
		elapsed.Round(time.Millisecond), float64(size>>20)/elapsed.Seconds(), proxyBefore, proxyAfter, daemonBefore, daemonAfter)
	for name, grew := range map[string]int64{"pveproxy": proxyAfter - proxyBefore, "pvedaemon": daemonAfter - daemonBefore} {
		if grew > 32<<10 {
			t.Errorf("%s's peak RSS grew by %d KiB during a 256 MiB upload", name, grew)
		}
	}
	if r := c.get("/api2/json/nodes/" + nodeName + "/storage/local/content?content=iso"); !strings.Contains(string(r.data), `"local:iso/big.iso"`) {
		t.Errorf("content list: %s", r.body)
	}
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestUploadCutThroughProxy: a client that closes its connection to
// pveproxy half-way through an upload leaves nothing in the storage; an
// upload pvedaemon refuses is answered before its body is sent.
func TestUploadCutThroughProxy(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOpts{})
	c := n.client(t, clientOpts{})
	c.mustLogin(adminUser, h.adminPW)
	isoDir := filepath.Join(n.prefix, "var/lib/vz/template/iso")
	list := func() []string {
		ents, _ := os.ReadDir(isoDir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}

	b, bn := uploadBody([][2]string{{"content", "iso"}}, "cut.iso", rand.NewChaCha8([32]byte{2}), 64<<20)
	conn, err := tls.DialWithDialer(dialer(""), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.pport)), n.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "POST /api2/json/nodes/%s/storage/local/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n"+
		"Cookie: PVEAuthCookie=%s\r\nCSRFPreventionToken: %s\r\n\r\n", nodeName, uploadBoundary, bn, url.QueryEscape(c.ticket), c.csrf)
	if _, err := io.CopyN(bw, b, bn/2); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		names := list()
		if len(names) == 1 && strings.HasPrefix(names[0], ".pveupload-") {
			if fi, err := os.Stat(filepath.Join(isoDir, names[0])); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no temporary file filling in %s: %v", isoDir, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close()
	deadline = time.Now().Add(30 * time.Second)
	for len(list()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("left behind after the client went away: %v", list())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Refused by pvedaemon (wrong extension) before the file is read: the
	// answer comes although most of the 1 GiB body was never sent.
	src := &countReader{r: rand.NewChaCha8([32]byte{3})}
	b, bn = uploadBody([][2]string{{"content", "iso"}}, "image.qcow2", src, 1<<30)
	r := c.upload(b, bn)
	if r.status != http.StatusBadRequest || r.errors["filename"] != "wrong file extension" {
		t.Errorf("refused upload: %d %q %v", r.status, r.message, r.errors)
	}
	if src.n > 256<<20 {
		t.Errorf("the client sent %d bytes of a refused upload", src.n)
	}
	if names := list(); len(names) > 0 {
		t.Errorf("left behind: %v", names)
	}
}

// countReader counts the bytes read from it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
