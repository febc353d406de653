package access

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testUserCfg = `user:alice@pve:1:0::::::
token:alice@pve!ci:0:1::
token:alice@pve!full:0:0::
token:alice@pve!old:1000:1::
user:bob@pve:1:0::::::
user:off@pve:0:0::::::
user:root@pam:1:0::::::
user:tfa@pve:1:0:::::x:

acl:1:/:alice@pve:PVEAuditor:
acl:1:/vms:alice@pve:PVEVMAdmin:
acl:1:/vms/100:alice@pve!ci:PVEVMUser:
acl:1:/storage:alice@pve!ci:PVEDatastoreAdmin:
`

type testEnv struct {
	a     *Authenticator
	root  *pvefs.Root
	clock *fakeClock
	pam   []string // calls of the fake PAM
	mu    sync.Mutex
}

func newTestEnv(t *testing.T, mutate func(*Deps)) *testEnv {
	t.Helper()
	root, err := pvefs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile(UserCfgFile, []byte(testUserCfg), 0o640); err != nil {
		t.Fatal(err)
	}
	env := &testEnv{root: root, clock: &fakeClock{t: time.Now().Truncate(time.Second)}}
	deps := Deps{
		FS:    root,
		Clock: env.clock.Now,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		PAM: func(service, user, password, rhost string) error {
			env.mu.Lock()
			env.pam = append(env.pam, fmt.Sprintf("%s %s %s", service, user, rhost))
			env.mu.Unlock()
			if user == "root" && password == "rootpw" {
				return nil
			}
			return errors.New("pam: Authentication failure")
		},
	}
	if mutate != nil {
		mutate(&deps)
	}
	env.a, err = NewAuthenticator(deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := env.a.EnsureKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(ctx, root, "alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(ctx, root, "tfa", "tfapw"); err != nil {
		t.Fatal(err)
	}
	if err := UpdateTokenSecrets(ctx, root, func(s TokenSecrets) error {
		s["alice@pve!ci"] = "11111111-1111-1111-1111-111111111111"
		s["alice@pve!full"] = "22222222-2222-2222-2222-222222222222"
		s["alice@pve!old"] = "33333333-3333-3333-3333-333333333333"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestEnsureKeys(t *testing.T) {
	env := newTestEnv(t, nil)
	for name, mode := range map[string]os.FileMode{AuthKeyFile: 0o600, AuthPubFile: 0o640, WWWKeyFile: 0o640} {
		p, _ := env.root.Path(name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v; want %v", name, fi.Mode().Perm(), mode)
		}
	}
	priv, _ := env.root.ReadFile(AuthKeyFile)
	pub, _ := env.root.ReadFile(AuthPubFile)
	www, _ := env.root.ReadFile(WWWKeyFile)
	k, err := ticket.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ticket.ParsePublicKey(pub)
	if err != nil || !pk.Equal(&k.PublicKey) {
		t.Fatalf("authkey.pub does not match authkey.key (%v)", err)
	}
	if _, err := ticket.ParsePrivateKey(www); err != nil {
		t.Errorf("pve-www.key: %v", err)
	}
	if err := env.a.EnsureKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again, _ := env.root.ReadFile(AuthKeyFile); string(again) != string(priv) {
		t.Error("EnsureKeys replaced an existing key")
	}
	if _, err := env.root.Stat(AuthPubOldFile); err == nil {
		t.Error("EnsureKeys rotated a fresh key")
	}
}

func TestLoginPVERealm(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	res, err := env.a.Login(ctx, "alice", "alicepw", "pve", "192.0.2.7")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if res.Username != "alice@pve" || !strings.HasPrefix(res.Ticket, "PVE:alice@pve:") {
		t.Errorf("Login = %+v", res)
	}
	if got, err := env.a.AuthenticateTicket(res.Ticket); err != nil || got != "alice@pve" {
		t.Errorf("AuthenticateTicket(new ticket) = %q, %v", got, err)
	}
	if err := env.a.VerifyCSRF("alice@pve", res.CSRFPreventionToken); err != nil {
		t.Errorf("VerifyCSRF(login token) = %v", err)
	}
	if err := env.a.VerifyCSRF("bob@pve", res.CSRFPreventionToken); !errors.Is(err, ticket.ErrInvalidCSRF) {
		t.Errorf("VerifyCSRF(other user) = %v; want ErrInvalidCSRF", err)
	}
	if res.Cap["vms"]["VM.Allocate"] != 1 || res.Cap["dc"]["Sys.Audit"] != 1 || len(res.Cap) != 7 {
		t.Errorf("cap = %v", res.Cap)
	}
	// the realm may also be part of the user name
	if _, err := env.a.Login(ctx, "alice@pve", "alicepw", "", ""); err != nil {
		t.Errorf("Login(alice@pve) = %v", err)
	}

	_, err = env.a.Login(ctx, "alice", "wrong", "pve", "192.0.2.7")
	var ae *AuthError
	if !errors.Is(err, ErrAuthFailed) || !errors.As(err, &ae) {
		t.Fatalf("wrong password: err = %v; want *AuthError", err)
	}
	if want := "authentication failure; rhost=192.0.2.7 user=alice@pve msg=invalid credentials"; err.Error() != want {
		t.Errorf("err = %q; want %q", err, want)
	}
	for _, tt := range []struct{ name, user, pw, realm, reason string }{
		{"disabled user", "off", "x", "pve", "user 'off@pve' is disabled"},
		{"unknown user", "zed", "x", "pve", "no such user ('zed@pve')"},
		{"no password set", "bob", "x", "pve", "no password set"},
		{"empty password", "alice", "", "pve", "no password"},
		{"unknown realm", "alice", "x", "ldap1", "no such user ('alice@ldap1')"},
		{"bad user id", "a:b", "x", "pve", `value "a:b@pve" does not look like a valid user id`},
	} {
		_, err := env.a.Login(ctx, tt.user, tt.pw, tt.realm, "")
		if !errors.As(err, &ae) || ae.Reason != tt.reason {
			t.Errorf("%s: err = %v; want reason %q", tt.name, err, tt.reason)
		}
	}
}

func TestLoginPAMRealm(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	if _, err := env.a.Login(ctx, "root", "rootpw", "pam", "::ffff:192.0.2.9"); err != nil {
		t.Fatalf("Login(root@pam) = %v", err)
	}
	if _, err := env.a.Login(ctx, "root", "nope", "pam", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Login(root@pam, wrong) = %v; want ErrAuthFailed", err)
	}
	want := []string{"proxmox-ve-auth root ::ffff:192.0.2.9", "proxmox-ve-auth root "}
	if fmt.Sprint(env.pam) != fmt.Sprint(want) {
		t.Errorf("PAM calls = %q; want %q", env.pam, want)
	}
	// a pam user must exist in user.cfg: PAM is not even asked
	env.pam = nil
	if _, err := env.a.Login(ctx, "daemon", "x", "pam", ""); !errors.Is(err, ErrAuthFailed) || env.pam != nil {
		t.Errorf("Login(daemon@pam) = %v, PAM calls %q", err, env.pam)
	}
}

func TestLoginRenewal(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	alice, err := env.a.Login(ctx, "alice", "alicepw", "pve", "")
	if err != nil {
		t.Fatal(err)
	}
	root, err := env.a.Login(ctx, "root", "rootpw", "pam", "")
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(15 * time.Minute)
	renewed, err := env.a.Login(ctx, "alice@pve", alice.Ticket, "", "")
	if err != nil {
		t.Fatalf("renewal with own ticket: %v", err)
	}
	if renewed.Ticket == alice.Ticket {
		t.Error("renewal returned the old ticket")
	}
	if _, err := env.a.Login(ctx, "bob@pve", alice.Ticket, "", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("alice's ticket logged in bob: %v", err)
	}
	if res, err := env.a.Login(ctx, "bob@pve", root.Ticket, "", ""); err != nil || res.Username != "bob@pve" {
		t.Errorf("root's ticket for bob = %v, %v; want a bob@pve ticket", res, err)
	}
	// verify mode does not let root's ticket stand in for another user
	if _, err := env.a.VerifyLogin(ctx, "bob@pve", root.Ticket, "", "", "/", []string{"Sys.Audit"}); err == nil {
		t.Error("VerifyLogin accepted root's ticket for bob")
	}
	if _, err := env.a.VerifyLogin(ctx, "alice@pve", alice.Ticket, "", "", "/vms/1", []string{"VM.Allocate"}); err != nil {
		t.Errorf("VerifyLogin(alice, VM.Allocate) = %v", err)
	}
	if _, err := env.a.VerifyLogin(ctx, "alice@pve", alice.Ticket, "", "", "/", []string{"Sys.Modify"}); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("VerifyLogin(alice, Sys.Modify) = %v; want ErrAuthFailed", err)
	}
	// tickets expire after two hours
	env.clock.Advance(2 * time.Hour)
	if _, err := env.a.Login(ctx, "alice@pve", alice.Ticket, "", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("renewal with an expired ticket: %v", err)
	}
	if _, err := env.a.AuthenticateTicket(alice.Ticket); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("AuthenticateTicket(expired) = %v", err)
	}
}

func TestHalfLoginTickets(t *testing.T) {
	env := newTestEnv(t, nil)
	priv, _ := env.root.ReadFile(AuthKeyFile)
	key, err := ticket.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	now := env.clock.Now()
	sign := func(data, secret string) string {
		tk, err := ticket.Sign(key, "PVE", data, secret, now)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	for _, tt := range []struct {
		name, ticket string
		incomplete   bool
	}{
		{"new style !tfa!", sign(`!tfa!{"totp":true}`, "alice@pve"), false},
		{"new style without secret", sign(`!tfa!{"totp":true}`, ""), false},
		{"legacy tfa!", sign("tfa!alice@pve", ""), true},
		{"legacy u2f!", sign("u2f!alice@pve!abc", ""), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.a.AuthenticateTicket(tt.ticket)
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("AuthenticateTicket = %v; want ErrAuthFailed", err)
			}
			if got := errors.Is(err, ErrIncompleteTicket); got != tt.incomplete {
				t.Errorf("errors.Is(ErrIncompleteTicket) = %v; want %v", got, tt.incomplete)
			}
			if _, err := env.a.Login(context.Background(), "alice@pve", tt.ticket, "", ""); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("Login with half-login ticket = %v; want ErrAuthFailed", err)
			}
		})
	}
}

// TestLoginSecondFactor: which users get a half-login ticket (NeedTFA)
// after a correct password.
func TestLoginSecondFactor(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t, nil)
	needTFA := func(user, pw, realm string) (bool, error) {
		t.Helper()
		res, err := env.a.Login(ctx, user, pw, realm, "")
		if err != nil {
			return false, err
		}
		return res.NeedTFA == 1, nil
	}
	// keys "x" only says the entries are in tfa.cfg; there are none yet.
	if need, err := needTFA("tfa", "tfapw", "pve"); err != nil || need {
		t.Errorf("keys x without tfa.cfg entries: need %v, err %v; want a full ticket", need, err)
	}
	if _, err := env.a.Login(ctx, "tfa", "wrong", "pve", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong password: err = %v; want ErrAuthFailed", err)
	}
	tfaCfg := `{"users":{"alice@pve":{"totp":[{"id":"a","created":1,"entry":"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"}]}}}`
	if err := env.root.WriteFile(TFAFile, []byte(tfaCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if need, err := needTFA("alice", "alicepw", "pve"); err != nil || !need {
		t.Errorf("user with a TOTP entry: need %v, err %v; want NeedTFA", need, err)
	}
	if _, err := env.a.Login(ctx, "alice", "wrong", "pve", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong password of a TFA user: err = %v; want ErrAuthFailed (no challenge)", err)
	}
	disabled := `{"users":{"alice@pve":{"totp":[{"id":"a","created":1,"enable":false,"entry":"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"}]}}}`
	if err := env.root.WriteFile(TFAFile, []byte(disabled), 0o600); err != nil {
		t.Fatal(err)
	}
	if need, err := needTFA("alice", "alicepw", "pve"); err != nil || need {
		t.Errorf("only disabled factors: need %v, err %v; want a full ticket", need, err)
	}
	// A realm that enforces a second factor refuses users without one.
	if err := env.root.WriteFile(DomainsFile, []byte("pve: pve\n\tcomment x\n\ttfa type=oath,step=30\n\npam: pam\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	env.a.Invalidate()
	if _, err := env.a.Login(ctx, "alice", "alicepw", "pve", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("realm with tfa, user without factors: err = %v; want ErrAuthFailed", err)
	}
	if need, err := needTFA("root", "rootpw", "pam"); err != nil || need {
		t.Errorf("other realm without tfa: need %v, err %v", need, err)
	}
}

func TestUserChangesAreSeen(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	res, err := env.a.Login(ctx, "alice", "alicepw", "pve", "")
	if err != nil {
		t.Fatal(err)
	}
	first := env.a.UserCfg()
	env.clock.Advance(2 * time.Second)
	if env.a.UserCfg() != first {
		t.Error("unchanged user.cfg was parsed again")
	}
	for _, tt := range []struct {
		name   string
		change func(*User)
	}{
		{"disabled", func(u *User) { u.Enable = false }},
		{"expired", func(u *User) { u.Enable, u.Expire = true, env.clock.Now().Unix()-1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := UpdateUserCfg(ctx, env.root, func(c *UserCfg) error {
				tt.change(c.Users["alice@pve"])
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			env.clock.Advance(1100 * time.Millisecond) // past the stat interval
			if _, err := env.a.AuthenticateTicket(res.Ticket); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("AuthenticateTicket after user %s = %v; want ErrAuthFailed", tt.name, err)
			}
			if _, err := env.a.Login(ctx, "alice", "alicepw", "pve", ""); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("Login after user %s = %v; want ErrAuthFailed", tt.name, err)
			}
			if got := env.a.Permissions("alice@pve", "/vms/1"); len(got) != 0 {
				t.Errorf("Permissions of %s user = %v; want none", tt.name, got)
			}
			if env.a.CheckPrivs("alice@pve!full", "/", []string{"VM.Audit"}, false) {
				t.Errorf("token of %s user holds privileges", tt.name)
			}
		})
	}
}

func TestAuthenticateToken(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t, nil)
	const ci = "11111111-1111-1111-1111-111111111111"
	if got, err := env.a.AuthenticateToken(ctx, "alice@pve!ci", ci); err != nil || got != "alice@pve!ci" {
		t.Errorf("AuthenticateToken = %q, %v", got, err)
	}
	for _, tt := range []struct{ name, id, secret string }{
		{"wrong secret", "alice@pve!ci", "22222222-2222-2222-2222-222222222222"},
		{"expired token", "alice@pve!old", "33333333-3333-3333-3333-333333333333"},
		{"unknown token", "alice@pve!nope", ci},
		{"malformed id", "alice@pve", ci},
		{"disabled owner", "off@pve!tk", ci},
	} {
		if _, err := env.a.AuthenticateToken(ctx, tt.id, tt.secret); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: err = %v; want ErrAuthFailed", tt.name, err)
		}
	}
	// privilege separation: the token's ACL intersected with alice's
	if got := env.a.Permissions("alice@pve!ci", "/vms/100"); !got.Has("VM.Console") || got.Has("VM.Allocate") {
		t.Errorf("privsep token on /vms/100 = %v", got.Sorted())
	}
	// alice has only PVEAuditor on /storage, so the token's
	// PVEDatastoreAdmin is cut down to Datastore.Audit
	if got := env.a.Permissions("alice@pve!ci", "/storage/local"); len(got) != 1 || !got.Has("Datastore.Audit") {
		t.Errorf("privsep token on /storage/local = %v; want [Datastore.Audit]", got.Sorted())
	}
	if got := env.a.Permissions("alice@pve!full", "/vms/100"); !got.Has("VM.Allocate") {
		t.Errorf("token without privsep on /vms/100 = %v; want alice's privileges", got.Sorted())
	}
	if got := env.a.Permissions("alice@pve!old", "/vms/100"); len(got) != 0 {
		t.Errorf("expired token holds %v", got.Sorted())
	}

	// pveproxy's variant asks pvedaemon; here a fake records the call
	var asked []string
	proxy := newTestEnv(t, func(d *Deps) {
		d.VerifySecret = func(_ context.Context, id, secret string) error {
			asked = append(asked, id+"="+secret)
			return ErrBadTokenSecret
		}
	})
	if _, err := proxy.a.AuthenticateToken(ctx, "alice@pve!ci", ci); !errors.Is(err, ErrAuthFailed) || len(asked) != 1 {
		t.Errorf("injected VerifySecret: err = %v, calls %v", err, asked)
	}
}

func TestKeyRotation(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	privPEM, _ := env.root.ReadFile(AuthKeyFile)
	oldPub, _ := env.root.ReadFile(AuthPubFile)
	key, err := ticket.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := env.clock.Now()
	// the key pair is a day and a minute old; a ticket from 90 s ago predates
	// the time rotation became due
	p, _ := env.root.Path(AuthPubFile)
	if err := os.Chtimes(p, now.Add(-24*time.Hour-time.Minute), now.Add(-24*time.Hour-time.Minute)); err != nil {
		t.Fatal(err)
	}
	env.a.Invalidate()
	old, err := ticket.Sign(key, "PVE", "alice@pve", "", now.Add(-90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.a.AuthenticateTicket(old); err != nil {
		t.Fatalf("ticket minted before rotation was due: %v", err)
	}
	res, err := env.a.Login(ctx, "alice", "alicepw", "pve", "")
	if err != nil {
		t.Fatal(err)
	}
	newPub, _ := env.root.ReadFile(AuthPubFile)
	savedPub, err := env.root.ReadFile(AuthPubOldFile)
	if err != nil || string(newPub) == string(oldPub) || string(savedPub) != string(oldPub) {
		t.Fatalf("rotation: new pub changed %v, old pub saved %v (%v)", string(newPub) != string(oldPub), string(savedPub) == string(oldPub), err)
	}
	if _, err := env.a.AuthenticateTicket(res.Ticket); err != nil {
		t.Errorf("ticket of the new key: %v", err)
	}
	if _, err := env.a.AuthenticateTicket(old); err != nil {
		t.Errorf("ticket of the rotated key: %v", err)
	}
	if rotated, err := env.a.RotateKeyIfNeeded(ctx); rotated || err != nil {
		t.Errorf("second RotateKeyIfNeeded = %v, %v; want no rotation", rotated, err)
	}
}

func TestNoRotationWithoutQuorum(t *testing.T) {
	env := newTestEnv(t, func(d *Deps) { d.Quorate = func() bool { return false } })
	if _, err := env.root.Stat(AuthPubFile); err == nil {
		t.Fatal("keys created without quorum")
	}
	if _, err := env.a.Login(context.Background(), "alice", "alicepw", "pve", ""); err == nil || errors.Is(err, ErrAuthFailed) {
		t.Errorf("Login without keys = %v; want a key error", err)
	}
}

// TestConcurrentUserCfgUpdates runs many read-modify-writes of user.cfg at
// once, each adding a user, while an Authenticator keeps reading it; no
// update may be lost.
func TestConcurrentUserCfgUpdates(t *testing.T) {
	env := newTestEnv(t, nil)
	ctx := context.Background()
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			env.a.Invalidate()
			if env.a.UserCfg().Users["alice@pve"] == nil {
				errs <- errors.New("reader saw a user.cfg without alice")
				return
			}
		}
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- UpdateUserCfg(ctx, env.root, func(c *UserCfg) error {
				c.Users[fmt.Sprintf("u%02d@pve", i)] = &User{Enable: true}
				return nil
			})
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	data, err := env.root.ReadFile(UserCfgFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, warns := ParseUserCfg(UserCfgFile, data)
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	for i := range n {
		if cfg.Users[fmt.Sprintf("u%02d@pve", i)] == nil {
			t.Errorf("update of u%02d@pve lost", i)
		}
	}
}

func TestKeyGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	env := newTestEnv(t, func(d *Deps) { d.KeyGID = 33 })
	for _, name := range []string{AuthPubFile, WWWKeyFile} {
		p, _ := env.root.Path(name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if gid := statGID(fi); gid != 33 {
			t.Errorf("%s group = %d; want 33", filepath.Base(p), gid)
		}
	}
}

func TestUnreadableUserCfgFailsClosed(t *testing.T) {
	env := newTestEnv(t, nil)
	res, err := env.a.Login(context.Background(), "root", "rootpw", "pam", "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := env.root.Path(UserCfgFile)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil { // reading it now fails
		t.Fatal(err)
	}
	env.a.Invalidate()
	if _, err := env.a.AuthenticateTicket(res.Ticket); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("AuthenticateTicket with unreadable user.cfg = %v; want ErrAuthFailed", err)
	}
	if _, err := env.a.Login(context.Background(), "root", "rootpw", "pam", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Login with unreadable user.cfg = %v; want ErrAuthFailed", err)
	}
}
