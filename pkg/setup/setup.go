package setup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/user"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/buildinfo"
	"github.com/pvenode/pvenode/pkg/nodename"
	"github.com/pvenode/pvenode/pkg/pvefs"
)

// ErrInvalidOption is wrapped by the errors Ensure returns for unusable
// Options.
var ErrInvalidOption = errors.New("setup: invalid option")

// Options control Ensure. Every field is optional.
type Options struct {
	// NodeName is this node's name; default: the host name up to the first dot.
	NodeName string
	// Domain is the DNS domain appended to the node name in the node
	// certificate; default: the last search or domain entry of ResolvConf,
	// as PVE takes it.
	Domain string
	// ResolvConf is read for the domain when Domain is empty; default
	// /etc/resolv.conf. A missing file means no domain.
	ResolvConf string
	// IPs are the node's addresses for the node certificate, in addition
	// to 127.0.0.1 and ::1; default: the non-loopback addresses the node
	// name resolves to, or else the global unicast addresses of the host's
	// interfaces.
	IPs []netip.Addr
	// AdminUser, such as "admin@pve", is created with a random password
	// and the Administrator role on / when user.cfg is created. It must
	// belong to the pve realm.
	AdminUser string
	// ServiceGroup is the group of the files pveproxy must read; default
	// buildinfo.ServiceUser (www-data). It is applied only when running as
	// root and the group exists.
	ServiceGroup string
	// Log receives one line per created item; default: discard.
	Log *slog.Logger
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
}

// Result describes the state after Ensure.
type Result struct {
	NodeName string
	// AdminUser is the administrator created now, if any.
	AdminUser string
	// AdminPassword is the plain password of AdminUser. It is set only when
	// the user was created by this call, and is stored nowhere else: the
	// caller shows it once.
	AdminPassword string
	// CAFingerprint and NodeFingerprint are the SHA-256 fingerprints of
	// pve-root-ca.pem and nodes/<node>/pve-ssl.pem as PVE shows them
	// (uppercase hex bytes separated by colons); ECDSAFingerprint that of
	// pve-ssl-ecdsa.pem.
	CAFingerprint    string
	NodeFingerprint  string
	ECDSAFingerprint string
	// Created lists the names (relative to the root) of the directories,
	// links and files this call created or replaced, in creation order.
	Created []string
}

// setupLock is the config-root lock that serialises Ensure calls.
const setupLock = "setup"

// Ensure creates what is missing of the node's config root. It never
// changes a file that exists, except that the node certificates are issued
// again when the CA certificate had to be created.
func Ensure(ctx context.Context, root *pvefs.Root, opts Options) (*Result, error) {
	e, err := newEnsurer(ctx, root, opts)
	if err != nil {
		return nil, err
	}
	unlock, err := root.Lock(ctx, setupLock)
	if err != nil {
		return nil, fmt.Errorf("setup %s: %w", root.Dir(), err)
	}
	defer unlock()
	if err := e.run(ctx); err != nil {
		return nil, fmt.Errorf("setup %s: %w", root.Dir(), err)
	}
	return &e.res, nil
}

// ensurer carries one Ensure call's settings and progress.
type ensurer struct {
	root   *pvefs.Root
	opts   Options
	log    *slog.Logger
	node   string
	domain string
	ips    []netip.Addr
	gid    int // group for non-private files, -1 to leave it
	now    time.Time
	res    Result
}

func newEnsurer(ctx context.Context, root *pvefs.Root, opts Options) (*ensurer, error) {
	e := &ensurer{root: root, opts: opts, log: opts.Log, gid: -1}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "setup")
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	e.now = now()

	node, err := nodename.Resolve(opts.NodeName)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if !validNodeName(node) {
		return nil, fmt.Errorf("%w: node name %q is not a valid host name", ErrInvalidOption, node)
	}
	e.node = node
	e.res.NodeName = node

	if opts.AdminUser != "" {
		if err := checkAdminUser(opts.AdminUser); err != nil {
			return nil, err
		}
	}

	e.domain = opts.Domain
	if e.domain == "" {
		rc := opts.ResolvConf
		if rc == "" {
			rc = "/etc/resolv.conf"
		}
		data, err := os.ReadFile(rc)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("setup: read %s: %w", rc, err)
		}
		e.domain = SearchDomain(data)
	}

	e.ips = opts.IPs
	if e.ips == nil {
		e.ips = nodename.Addrs(ctx, node)
	}

	group := opts.ServiceGroup
	if group == "" {
		group = buildinfo.ServiceUser
	}
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(group); err == nil {
			if id, err := strconv.Atoi(g.Gid); err == nil {
				e.gid = id
			}
		}
	}
	return e, nil
}

func (e *ensurer) run(ctx context.Context) error {
	nd := "nodes/" + e.node
	for _, d := range []struct {
		name    string
		private bool
	}{
		{"nodes", false},
		{nd, false},
		{nd + "/qemu-server", false},
		{nd + "/lxc", false},
		{nd + "/priv", true},
		{"priv", true},
		{"priv/lock", true},
	} {
		if err := e.mkdir(d.name, d.private); err != nil {
			return err
		}
	}
	for _, l := range []struct{ name, target string }{
		{"local", nd},
		{"qemu-server", nd + "/qemu-server"},
		{"lxc", nd + "/lxc"},
	} {
		if err := e.symlink(l.name, l.target); err != nil {
			return err
		}
	}
	if err := e.ensurePKI(); err != nil {
		return err
	}
	if err := e.ensureUsers(ctx); err != nil {
		return err
	}
	return e.ensureDomains(ctx)
}

// created records name as created now.
func (e *ensurer) created(name string) {
	e.res.Created = append(e.res.Created, name)
	e.log.Info("created", "path", name)
}

// exists reports whether name exists (without following a final symlink).
func (e *ensurer) exists(name string) (bool, error) {
	p, err := e.root.Path(name)
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(p)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("stat %s: %w", name, err)
}

// mkdir creates the directory name if it is missing.
func (e *ensurer) mkdir(name string, private bool) error {
	p, err := e.root.Path(name)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", name)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	mode := fs.FileMode(0o755)
	if private {
		mode = 0o700
	}
	if err := os.Mkdir(p, mode); err != nil {
		return fmt.Errorf("mkdir %s: %w", name, err)
	}
	// Mkdir is subject to the umask; set the mode we mean.
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if !private {
		if err := e.chgrp(name); err != nil {
			return err
		}
	}
	e.created(name)
	return nil
}

// symlink makes name a relative symlink to target (a root-relative name).
// A link pointing elsewhere, left behind when the node was renamed, is
// replaced; anything else in its place is an error.
func (e *ensurer) symlink(name, target string) error {
	p, err := e.root.Path(name)
	if err != nil {
		return err
	}
	rel := relTarget(name, target)
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%s exists and is not a symlink", name)
	case err == nil:
		cur, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", name, err)
		}
		if cur == rel {
			return nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat %s: %w", name, err)
	}
	// Create under a temporary name and rename over, so that the link is
	// never missing.
	tmp := p + ".tmp-link"
	_ = os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("symlink %s: %w", name, err)
	}
	e.created(name)
	return nil
}

// relTarget returns target relative to the directory of name (both
// root-relative, slash-separated).
func relTarget(name, target string) string {
	depth := strings.Count(path.Clean(name), "/")
	return strings.Repeat("../", depth) + target
}

// writeNew writes a file that does not exist yet: private files get 0600,
// others 0640 and the service group.
func (e *ensurer) writeNew(name string, data []byte, private bool) error {
	mode := fs.FileMode(0o640)
	if private {
		mode = 0o600
	}
	if err := e.root.WriteFile(name, data, mode); err != nil {
		return err
	}
	if !private {
		if err := e.chgrp(name); err != nil {
			return err
		}
	}
	e.created(name)
	return nil
}

// chgrp gives name the service group, if one applies.
func (e *ensurer) chgrp(name string) error {
	if e.gid < 0 {
		return nil
	}
	p, err := e.root.Path(name)
	if err != nil {
		return err
	}
	if err := os.Lchown(p, 0, e.gid); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return nil
}

// reNodeName is PVE's node name format: a host name label.
var reNodeName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)

func validNodeName(s string) bool {
	return len(s) <= 63 && reNodeName.MatchString(s)
}

// SearchDomain returns the domain PVE appends to the node name in the node
// certificate: the first name of the last "search" or "domain" line of
// resolv.conf, or "" if there is none.
func SearchDomain(resolvConf []byte) string {
	domain := ""
	for _, line := range strings.Split(string(resolvConf), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "search" || f[0] == "domain") && strings.HasPrefix(line, f[0]) {
			domain = f[1]
		}
	}
	return domain
}
