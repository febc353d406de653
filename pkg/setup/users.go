package setup

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/GehirnInc/crypt/sha256_crypt"
)

// Files of the access configuration, relative to the config root.
const (
	UserCfgFile    = "user.cfg"
	ShadowFile     = "priv/shadow.cfg"
	DomainsCfgFile = "domains.cfg"
)

// DefaultDomainsCfg is domains.cfg with the two realms PVE always has, in
// PVE's section-config layout (TAB-indented, an empty line after each
// section).
const DefaultDomainsCfg = "pam: pam\n" +
	"\tcomment Linux PAM standard authentication\n" +
	"\n" +
	"pve: pve\n" +
	"\tcomment Proxmox VE authentication server\n" +
	"\n"

// passwordLen and passwordAlphabet define generated admin passwords: 20
// characters of a URL-safe alphabet give 120 bits of entropy.
const (
	passwordLen      = 20
	passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	saltLen          = 8
	saltAlphabet     = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// reUserID is PVE's user id format: name@realm.
var reUserID = regexp.MustCompile(`^([^\s:/]+)@([A-Za-z][A-Za-z0-9._-]+)$`)

// checkAdminUser validates Options.AdminUser.
func checkAdminUser(id string) error {
	m := reUserID.FindStringSubmatch(id)
	if m == nil || len(id) > 64 {
		return fmt.Errorf("%w: admin user %q is not a user id of the form name@realm", ErrInvalidOption, id)
	}
	if m[2] != "pve" {
		return fmt.Errorf("%w: admin user %q: realm must be pve (passwords of other realms are not stored in the config root)", ErrInvalidOption, id)
	}
	return nil
}

// UserCfg returns the user.cfg PVE writes for root@pam and, if admin is not
// empty, an enabled user admin with the Administrator role on /.
func UserCfg(admin string) []byte {
	users := []string{"root@pam"}
	if admin != "" && admin != "root@pam" {
		users = append(users, admin)
	}
	// PVE's writer: users sorted, then the (here empty) groups, pools and
	// roles, each group followed by one empty line, then the ACL.
	slices.Sort(users)
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "user:%s:1:0:::::\n", u)
	}
	b.WriteString("\n\n\n\n")
	if admin != "" && admin != "root@pam" {
		fmt.Fprintf(&b, "acl:1:/:%s:Administrator:\n", admin)
	}
	return []byte(b.String())
}

// ensureUsers creates user.cfg if it is missing, with the administrator
// (whose password goes to priv/shadow.cfg first). An existing user.cfg is
// left exactly as it is.
func (e *ensurer) ensureUsers(ctx context.Context) error {
	created := false
	err := e.root.Update(ctx, UserCfgFile, 0o640, func(old []byte) ([]byte, error) {
		if old != nil {
			return old, nil
		}
		admin := e.opts.AdminUser
		if admin != "" {
			pw, err := randomString(passwordLen, passwordAlphabet)
			if err != nil {
				return nil, err
			}
			if err := e.setShadow(ctx, admin, pw); err != nil {
				return nil, err
			}
			e.res.AdminUser, e.res.AdminPassword = admin, pw
		}
		created = true
		return UserCfg(admin), nil
	})
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	if err := e.chgrp(UserCfgFile); err != nil {
		return err
	}
	e.created(UserCfgFile)
	return nil
}

// setShadow stores the password hash of the pve-realm user id in
// priv/shadow.cfg, replacing an old entry of that user.
func (e *ensurer) setShadow(ctx context.Context, userid, password string) error {
	name, _, _ := strings.Cut(userid, "@")
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	err = e.root.Update(ctx, ShadowFile, 0o600, func(old []byte) ([]byte, error) {
		var b strings.Builder
		for _, line := range strings.Split(string(old), "\n") {
			if line == "" || strings.HasPrefix(line, name+":") {
				continue
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s:%s:\n", name, hash)
		return []byte(b.String()), nil
	})
	if err != nil {
		return err
	}
	e.created(ShadowFile)
	return nil
}

// ensureDomains creates domains.cfg with the pam and pve realms if it is
// missing.
func (e *ensurer) ensureDomains(ctx context.Context) error {
	created := false
	err := e.root.Update(ctx, DomainsCfgFile, 0o640, func(old []byte) ([]byte, error) {
		if old != nil {
			return old, nil
		}
		created = true
		return []byte(DefaultDomainsCfg), nil
	})
	if err != nil || !created {
		return err
	}
	if err := e.chgrp(DomainsCfgFile); err != nil {
		return err
	}
	e.created(DomainsCfgFile)
	return nil
}

// HashPassword returns the glibc SHA-256 crypt ("$5$", 5000 rounds) of
// password with a random 8-character salt, the form PVE stores in
// priv/shadow.cfg.
func HashPassword(password string) (string, error) {
	salt, err := randomString(saltLen, saltAlphabet)
	if err != nil {
		return "", err
	}
	h, err := sha256_crypt.New().Generate([]byte(password), []byte("$5$"+salt))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// randomString returns n characters drawn uniformly from alphabet, whose
// length must be 64 (so that six random bits pick one without bias).
func randomString(n int, alphabet string) (string, error) {
	if len(alphabet) != 64 {
		return "", fmt.Errorf("random string: alphabet has %d characters, want 64", len(alphabet))
	}
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("random string: %w", err)
	}
	for i, b := range buf {
		buf[i] = alphabet[b&63]
	}
	return string(buf), nil
}
