package apitest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/pvefs"
)

const (
	// Password is the password of every pve-realm user in user.cfg and of
	// root@pam (through a fake PAM).
	Password = "correct horse battery"
	// Node is the name of the node the server runs on.
	Node = "n1"
	// Domains is a domains.cfg with PVE's two built-in realms, pve the
	// default; New writes it unless Setup.Files has a domains.cfg.
	Domains = "pam: pam\n\tcomment Linux PAM standard authentication\n\n" +
		"pve: pve\n\tcomment Proxmox VE authentication server\n\tdefault 1\n\n"
	// RootUser is the user.cfg line of root@pam.
	RootUser = "user:root@pam:1:0:::root@localhost:::\n"
)

// Setup is what New writes under the config root.
type Setup struct {
	// Dir is the config root; "" means a new temporary directory.
	Dir string
	// Files maps a name under the config root to its content; files under
	// priv/ get mode 0600, the others 0640. Missing domains.cfg,
	// priv/shadow.cfg and priv/token.cfg are written as Domains and empty.
	Files map[string]string
	// Keys, when set, supplies the signing keys of an earlier Env.
	Keys *KeyCache
}

// Env is a config root in a temporary directory and a real Authenticator
// over it.
type Env struct {
	TB   testing.TB
	Dir  string
	Root *pvefs.Root
	Auth *access.Authenticator
	// Log discards everything.
	Log *slog.Logger
}

// New writes s.Files, opens the config root and builds its Authenticator
// with signing keys. Every pve-realm user of user.cfg gets Password.
func New(tb testing.TB, s Setup) *Env {
	tb.Helper()
	dir := s.Dir
	if dir == "" {
		dir = tb.TempDir()
	}
	files := map[string]string{"domains.cfg": Domains, "priv/shadow.cfg": "", "priv/token.cfg": ""}
	for name, data := range s.Files {
		files[name] = data
	}
	for name, data := range files {
		mode := os.FileMode(0o640)
		if strings.HasPrefix(name, "priv/") {
			mode = 0o600
		}
		writeFile(tb, filepath.Join(dir, name), []byte(data), mode)
	}
	keys := s.Keys.get()
	for name, data := range keys {
		writeFile(tb, filepath.Join(dir, name), data, 0o600)
	}
	root, err := pvefs.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	auth, err := access.NewAuthenticator(access.Deps{
		FS: root, Clock: time.Now, Log: log, TFAStateDir: filepath.Join(dir, "run-tfa"),
		PAM: func(service, user, password, rhost string) error {
			if user == "root" && password == Password {
				return nil
			}
			return access.ErrAuthFailed
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := auth.EnsureKeys(ctx); err != nil {
		tb.Fatal(err)
	}
	if s.Keys != nil && keys == nil {
		s.Keys.set(tb, dir)
	}
	cfg, _ := access.ParseUserCfg("user.cfg", []byte(files["user.cfg"]))
	for u := range cfg.Users {
		if name, ok := strings.CutSuffix(u, "@pve"); ok {
			if err := access.SetPassword(ctx, root, name, Password); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return &Env{TB: tb, Dir: dir, Root: root, Auth: auth, Log: log}
}

// File returns the content of name under the config root.
func (e *Env) File(name string) string {
	e.TB.Helper()
	b, err := os.ReadFile(filepath.Join(e.Dir, name))
	if err != nil {
		e.TB.Fatal(err)
	}
	return string(b)
}

func writeFile(tb testing.TB, p string, data []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		tb.Fatal(err)
	}
}

// KeyCache keeps the signing keys of the first Env built with it for the
// later ones: generating an RSA key is most of a small test's time. A test
// package declares one as a package variable. The zero value is empty.
type KeyCache struct {
	mu    sync.Mutex // guards files
	files map[string][]byte
}

func (c *KeyCache) get() map[string][]byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.files
}

func (c *KeyCache) set(tb testing.TB, dir string) {
	tb.Helper()
	files := map[string][]byte{}
	for _, name := range []string{access.AuthKeyFile, access.AuthPubFile, access.WWWKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		files[name] = b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files = files
}
