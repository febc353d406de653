package e2e

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// viewerWait bounds each step of the remote-viewer test: the X server's
// display, the SPICE session showing the guest, the guest's text in a
// screenshot.
const viewerWait = 60 * time.Second

// TestRemoteViewer opens a VM's console with a real SPICE client,
// remote-viewer (Debian: virt-viewer), on a private X server (Xvfb): the
// .vv file is the answer of POST .../spiceproxy, the viewer reaches QEMU
// through spiceproxy, and a screenshot shows the guest's console (SeaBIOS
// text) in the viewer window. Skipped when QEMU,
// remote-viewer, Xvfb, xwininfo, xwd or ImageMagick's convert is missing.
func TestRemoteViewer(t *testing.T) {
	for _, tool := range []string{"qemu-system-x86_64", "remote-viewer", "Xvfb", "xwininfo", "xwd", "convert"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if out, err := exec.Command("convert", "-version").Output(); err != nil || !strings.Contains(string(out), "ImageMagick") {
		t.Skip("convert is not ImageMagick's")
	}
	// Not parallel: another test's node picking the same free SPICE port
	// (61000-61999, chosen by each pvedaemon on its own) at the same moment
	// would make one QEMU fail to bind it.
	n := newNode(t, nodeOpts{})
	t.Cleanup(func() { killGuests(n) })
	sport := freePort(t, "tcp", ":0")
	if _, stderr, err := n.run("spiceproxy", "start", "--prefix", n.prefix, "--port", strconv.Itoa(sport), "--node", n.name); err != nil {
		t.Fatalf("start spiceproxy: %v: %s", err, stderr)
	}
	t.Cleanup(func() { _, _, _ = n.run("spiceproxy", "stop", "--prefix", n.prefix) })
	c := n.client(t, clientOpts{keepAlive: true})
	c.mustLogin(adminUser, h.adminPW)
	base := "/api2/json/nodes/" + nodeName + "/qemu"
	upid := startedTask(t, c, http.MethodPost, base, url.Values{"vmid": {"100"}, "name": {"spice"}, "memory": {"64"}, "vga": {"qxl"}, "start": {"1"}})
	if st := waitTask(t, c, upid); st != "OK" {
		t.Fatalf("create and start: %s\n%s", st, taskLog(t, c, upid))
	}

	dir := t.TempDir()
	display := startXvfb(t, dir)

	// The SPICE password expires 30 s after this call: the viewer starts
	// right away.
	r := c.must(http.MethodPost, base+"/100/spiceproxy", url.Values{"proxy": {"127.0.0.1"}}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("spiceproxy: %d %s", r.status, r.body)
	}
	var vv map[string]any
	decode(t, r, &vv)
	// The API names port 3128, as PVE does; this test's spiceproxy listens
	// on a free port.
	vv["proxy"] = "http://127.0.0.1:" + strconv.Itoa(sport)
	vvPath := filepath.Join(dir, "console.vv")
	if err := os.WriteFile(vvPath, []byte(vvFile(vv)), 0o600); err != nil {
		t.Fatal(err)
	}
	title := fmt.Sprint(vv["title"])
	tlsPort := fmt.Sprint(vv["tls-port"])

	// --debug logs the session's steps: "main channel: opened", "notebook
	// show display" once the guest's display is shown.
	log := &logBuf{}
	viewer := exec.Command("remote-viewer", "--debug", vvPath)
	viewer.Env = append(os.Environ(), "DISPLAY="+display, "XDG_RUNTIME_DIR="+dir, "NO_AT_BRIDGE=1", "GDK_BACKEND=x11")
	viewer.Stdout, viewer.Stderr = log, log
	if err := viewer.Start(); err != nil {
		t.Fatalf("start remote-viewer: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = viewer.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = viewer.Process.Kill()
		<-exited
	})
	running := func() error {
		select {
		case <-exited:
			return fmt.Errorf("remote-viewer exited:\n%s", log)
		default:
			return nil
		}
	}

	// The window takes the .vv title only once the session is up (before,
	// and after a refused password, it is named after the file).
	waitFor(t, "the SPICE display in remote-viewer", func() (bool, error) {
		if err := running(); err != nil {
			return false, err
		}
		l := log.String()
		if strings.Contains(l, "auth failure") || strings.Contains(l, "failed to connect") {
			return false, fmt.Errorf("SPICE connection failed:\n%s", l)
		}
		if !strings.Contains(l, "main channel: opened") || !strings.Contains(l, "notebook show display") {
			return false, nil
		}
		out, err := exec.Command("xwininfo", "-display", display, "-root", "-tree").Output()
		return err == nil && strings.Contains(string(out), `"`+title), nil
	})
	// Through spiceproxy: it logged the tunnel to the VM's TLS port.
	n.waitAccess(t, "for the viewer's CONNECT", func(l accessLine) bool {
		return strings.HasPrefix(l.request, "CONNECT ") && strings.Contains(l.request, ":"+tlsPort+" ") && l.status == "200"
	})

	// Screenshots until one is not blank and shows the guest's text: light
	// pixels in the viewer window below its header bar, where the dark
	// theme's chrome has none and the console is light text on black. A
	// guest between two screens (SeaBIOS retrying the boot) is black for a
	// moment.
	shot := filepath.Join(dir, "console.png")
	var colors int
	var text float64
	waitFor(t, "the guest's text in a screenshot", func() (bool, error) {
		if err := running(); err != nil {
			return false, err
		}
		out, err := exec.Command("xwininfo", "-display", display, "-root", "-tree").Output()
		if err != nil {
			return false, fmt.Errorf("xwininfo: %w", err)
		}
		win, ok := windowRect(string(out), title)
		if !ok {
			return false, fmt.Errorf("no window %q:\n%s", title, out)
		}
		win.Min.Y += viewerHeader
		if colors, text, err = screenshot(display, shot, win); err != nil {
			return false, err
		}
		return colors > 2 && text > 0.001, nil
	})
	t.Logf("screenshot %s: %d colours, light (text) fraction in the console %.4f", shot, colors, text)
}

// viewerHeader is the height of remote-viewer's header bar (48 px with
// GTK's Adwaita theme), rounded up.
const viewerHeader = 60

// windowRect finds the top-level window whose name starts with title in
// the output of `xwininfo -root -tree`, whose lines read
//
//	0x200007 "VM 100 - spice (1)": ("remote-viewer" "Remote-viewer")  730x456+0+0  +0+0
//
// and returns its rectangle in root coordinates.
func windowRect(tree, title string) (image.Rectangle, bool) {
	re := regexp.MustCompile(`^\s*0x[0-9a-f]+ "` + regexp.QuoteMeta(title) + `[^"]*":.* (\d+)x(\d+)[+-]-?\d+[+-]-?\d+\s+\+(-?\d+)\+(-?\d+)$`)
	for _, line := range strings.Split(tree, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var v [4]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+1])
		}
		return image.Rect(v[2], v[3], v[2]+v[0], v[3]+v[1]), true
	}
	return image.Rectangle{}, false
}

// vvFile renders the spiceproxy answer as remote-viewer's .vv file: a
// [virt-viewer] group of key=value lines (sorted, for a stable file). The
// ca value keeps its literal \n sequences; remote-viewer's key file parser
// turns them into newlines.
func vvFile(vv map[string]any) string {
	keys := make([]string, 0, len(vv))
	for k := range vv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[virt-viewer]\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v\n", k, vv[k])
	}
	return b.String()
}

// startXvfb starts an X server on a display it picks (-displayfd) with a
// white root (-wr) and returns the display name; it is stopped when the test
// ends.
func startXvfb(t *testing.T, dir string) string {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	log := &logBuf{}
	x := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-wr")
	x.ExtraFiles = []*os.File{pw}
	x.Stdout, x.Stderr = log, log
	x.Dir = dir
	if err := x.Start(); err != nil {
		pw.Close()
		t.Fatalf("start Xvfb: %v", err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { _ = x.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = x.Process.Kill()
		<-done
	})
	_ = pr.SetReadDeadline(time.Now().Add(viewerWait))
	line, err := bufio.NewReader(pr).ReadString('\n')
	num, convErr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || convErr != nil {
		t.Fatalf("Xvfb reported no display (%q, %v):\n%s", line, err, log)
	}
	return ":" + strconv.Itoa(num)
}

// screenshot saves the X root of display as PNG at path (xwd, converted by
// ImageMagick) and returns its number of distinct colours and the fraction
// of light pixels (luma of at least 50 %) within area.
func screenshot(display, path string, area image.Rectangle) (int, float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), viewerWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `xwd -root -silent -display "$1" | convert xwd:- png:"$2"`, "sh", display, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("screenshot: %v: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return 0, 0, fmt.Errorf("screenshot %s: %w", path, err)
	}
	colors := map[[3]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colors[[3]uint32{r, g, b}] = true
		}
	}
	area = area.Intersect(bounds)
	if area.Empty() {
		return len(colors), 0, nil
	}
	light := 0
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if 299*r+587*g+114*b >= 500*0xffff {
				light++
			}
		}
	}
	return len(colors), float64(light) / float64(area.Dx()*area.Dy()), nil
}

// waitFor polls cond until it holds, fails or viewerWait has passed.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(viewerWait)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, viewerWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
