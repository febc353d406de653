package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeName is the node name every test installation uses, so that nothing
// depends on the host name.
const nodeName = "testnode"

// adminUser is the pve-realm administrator `pvedaemon setup` creates.
const adminUser = "admin@pve"

// harness is what TestMain prepares once for all tests.
type harness struct {
	bin      string // directory holding the pvedaemon and pveproxy binaries
	base     string // scratch directory (mode 0755) holding every prefix
	template string // prefix initialised by `pvedaemon setup`
	setupOut string // stdout of that setup run
	adminPW  string // password of adminUser
	wwwUID   int
	wwwGID   int
	skip     string // non-empty: every test skips with this reason
	err      error  // non-nil: every test fails with this error
}

// h is set by TestMain before any test runs and only read afterwards.
var h *harness

func TestMain(m *testing.M) {
	flag.Parse()
	h = prepare()
	code := m.Run()
	if h.base != "" {
		_ = os.RemoveAll(h.base)
	}
	os.Exit(code)
}

// env returns the harness, skipping or failing t when it is not usable.
func env(t *testing.T) *harness {
	t.Helper()
	if h.skip != "" {
		t.Skip(h.skip)
	}
	if h.err != nil {
		t.Fatal(h.err)
	}
	return h
}

func prepare() *harness {
	hs := &harness{}
	switch {
	case testing.Short():
		hs.skip = "e2e: -short skips the tests that start the real daemons"
		return hs
	case os.Geteuid() != 0:
		hs.skip = "e2e: needs root (pvedaemon runs as root, pveproxy drops to www-data)"
		return hs
	}
	u, err := user.Lookup("www-data")
	if err != nil {
		hs.err = fmt.Errorf("e2e: service user: %w", err)
		return hs
	}
	hs.wwwUID, _ = strconv.Atoi(u.Uid)
	hs.wwwGID, _ = strconv.Atoi(u.Gid)

	base, err := os.MkdirTemp("", "pvenode-e2e-")
	if err != nil {
		hs.err = err
		return hs
	}
	hs.base = base
	// pveproxy runs as www-data and must traverse every prefix.
	if err := os.Chmod(base, 0o755); err != nil {
		hs.err = err
		return hs
	}
	if hs.bin = os.Getenv("PVENODE_BIN"); hs.bin == "" {
		hs.bin = filepath.Join(base, "bin")
		if err := build(hs.bin); err != nil {
			hs.err = err
			return hs
		}
	}
	for _, b := range []string{"pvedaemon", "pveproxy", "pvestatd", "spiceproxy", "pvescheduler", "pvenode-tool"} {
		if _, err := os.Stat(filepath.Join(hs.bin, b)); err != nil {
			hs.err = fmt.Errorf("e2e: binary %s: %w", b, err)
			return hs
		}
	}

	hs.template = filepath.Join(base, "template")
	if err := os.Mkdir(hs.template, 0o755); err != nil {
		hs.err = err
		return hs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(hs.bin, "pvedaemon"), "setup",
		"--prefix", hs.template, "--admin", adminUser, "--node", nodeName)
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		hs.err = fmt.Errorf("e2e: pvedaemon setup: %w: %s", err, stderrOf(err))
		return hs
	}
	hs.setupOut = string(out)
	hs.adminPW = setupField(hs.setupOut, "password")
	if hs.adminPW == "" {
		hs.err = fmt.Errorf("e2e: pvedaemon setup printed no password:\n%s", out)
	}
	return hs
}

// build compiles the daemons from the module this package belongs to.
func build(dir string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("e2e: go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/pvedaemon", "./cmd/pveproxy", "./cmd/pvestatd", "./cmd/spiceproxy", "./cmd/pvescheduler", "./cmd/pvenode-tool")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("e2e: build the daemons: %w\n%s", err, out)
	}
	return nil
}

// childEnv is the environment of the daemons: ours without what would make
// them talk to systemd or re-root them elsewhere.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "NOTIFY_SOCKET", "JOURNAL_STREAM", "PVENODE_PREFIX", "LISTEN_FDS", "LISTEN_PID":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// needQEMU skips a test that runs guests where QEMU is not installed.
func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// setupField returns the value of the "key: value" line of setup's output.
func setupField(out, key string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// newPrefix returns a fresh prefix (mode 0755) holding a copy of the
// template's files with their modes and owners; it is removed when the test
// ends, after the daemons are stopped (cleanups run last-in first-out).
func newPrefix(t *testing.T) string {
	t.Helper()
	hs := env(t)
	dir, err := os.MkdirTemp(hs.base, "node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(hs.template, dir); err != nil {
		t.Fatalf("copy template: %v", err)
	}
	return dir
}

// copyTree copies the regular files, directories and symlinks of src into
// dst, keeping modes and owners.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			return os.Lchown(target, int(st.Uid), int(st.Gid))
		case fi.IsDir():
			if err := os.Mkdir(target, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, data, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, locks: not part of a config root
		}
		if err := os.Chmod(target, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chown(target, int(st.Uid), int(st.Gid))
	})
}
