package access

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pvenode/pvenode/pkg/audit"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tfa"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// Key files under the config root.
const (
	AuthKeyFile    = "priv/authkey.key"
	AuthPubFile    = "authkey.pub"
	AuthPubOldFile = "authkey.pub.old"
	WWWKeyFile     = "pve-www.key"
)

// DefaultPAMService is the PAM service PVE authenticates pam realm users
// with.
const DefaultPAMService = "proxmox-ve-auth"

// ErrAuthFailed is the error of every failed authentication. The caller
// answers 401 without detail; the wrapping *AuthError carries the reason
// for the log.
var ErrAuthFailed = errors.New("authentication failure")

// ErrIncompleteTicket marks a legacy half-login ticket ("tfa!" or "u2f!"
// kind), which PVE only accepts for POST /access/tfa. It comes wrapped in
// an *AuthError.
var ErrIncompleteTicket = errors.New("incomplete ticket")

// ErrTFANotImplemented is returned by Login when the password was right but
// the user has second factors, which this implementation cannot check yet.
// It is never silently skipped.
var ErrTFANotImplemented = errors.New("not implemented: two-factor login")

// AuthError is a failed authentication with its internal reason. Its text
// is PVE's syslog line "authentication failure; rhost=<ip> user=<id>
// msg=<reason>"; it matches ErrAuthFailed with errors.Is.
type AuthError struct {
	ClientIP string
	User     string
	Reason   string
	Err      error // an additional sentinel such as ErrIncompleteTicket, or nil
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("authentication failure; rhost=%s user=%s msg=%s", e.ClientIP, e.User, e.Reason)
}

// Unwrap lets errors.Is find ErrAuthFailed and Err.
func (e *AuthError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrAuthFailed, e.Err}
	}
	return []error{ErrAuthFailed}
}

// AuditDetail returns the claimed user and the reason, for the audit log.
func (e *AuthError) AuditDetail() (user, reason string) { return e.User, e.Reason }

// noteLoginFailure gives the reason of a failed login to the audit line of
// the call (see audit.SetReason).
func noteLoginFailure(ctx context.Context, err error) {
	var ae *AuthError
	switch {
	case errors.As(err, &ae):
		audit.SetReason(ctx, ae.Reason)
	case errors.Is(err, ErrTFANotImplemented):
		audit.SetReason(ctx, "second factor required (not implemented)")
	}
}

// Deps are the collaborators of an Authenticator. FS, Clock and Log are
// required; the others have the documented defaults.
type Deps struct {
	FS    *pvefs.Root
	Clock func() time.Time
	Log   *slog.Logger
	// PAMService is the PAM service for the pam realm ("" means
	// DefaultPAMService).
	PAMService string
	// PAM authenticates against PAM (nil means PAMAuthenticate).
	PAM func(service, user, password, rhost string) error
	// VerifySecret checks an API token secret. nil reads priv/token.cfg
	// directly, which only root can (pvedaemon); pveproxy passes a func
	// that asks pvedaemon. It returns nil for a matching secret.
	VerifySecret func(ctx context.Context, tokenID, secret string) error
	// Quorate reports cluster quorum, which ticket age windows and key
	// rotation depend on (nil means always quorate, a single node).
	Quorate func() bool
	// TFAStateDir keeps the second-factor failure counters (node-local;
	// "" means PVE's /run/pve-private/tfa-challenges).
	TFAStateDir string
	// KeyGID is the group given to the files EnsureKeys and key rotation
	// create that unprivileged daemons must read (pve-www.key, authkey.pub,
	// authkey.pub.old); 0 leaves them root's.
	KeyGID int
}

// Authenticator authenticates tickets, API tokens and logins and answers
// permission questions from the current user.cfg. It caches the files it
// reads and re-reads one only when it changed (checked at most once per
// second), so it is cheap to call on every request. It is safe for
// concurrent use.
type Authenticator struct {
	deps Deps
	log  *slog.Logger

	userCfg  cachedFile[*UserCfg]
	tokenCfg cachedFile[[]byte]
	pub      cachedFile[*rsa.PublicKey]
	pubOld   cachedFile[*rsa.PublicKey]
	priv     cachedFile[*rsa.PrivateKey]
	csrf     cachedFile[string]
	domains  cachedFile[map[string]Realm]
	tfaCfg   cachedFile[*tfa.Config] // priv/tfa.cfg, for lock states (pvedaemon only)
	// tokenNets are the allowed source networks of tokens (tokennet.go).
	tokenNets cachedFile[tokenNetSets]

	rotateMu sync.Mutex // serialises key creation and rotation in this process

	sigs  *ticket.SigCache         // verified login-ticket signatures
	perms atomic.Pointer[permMemo] // privilege sets of the current user.cfg
}

// NewAuthenticator returns an Authenticator over deps.
func NewAuthenticator(deps Deps) (*Authenticator, error) {
	if deps.FS == nil || deps.Clock == nil || deps.Log == nil {
		return nil, errors.New("new authenticator: FS, Clock and Log are required")
	}
	if deps.PAMService == "" {
		deps.PAMService = DefaultPAMService
	}
	if deps.PAM == nil {
		deps.PAM = PAMAuthenticate
	}
	if deps.Quorate == nil {
		deps.Quorate = func() bool { return true }
	}
	a := &Authenticator{deps: deps, log: deps.Log.With("component", "access"), sigs: ticket.NewSigCache(ticketCacheSize)}
	a.userCfg = cachedFile[*UserCfg]{name: UserCfgFile, parse: func(data []byte) (*UserCfg, error) {
		cfg, warns := ParseUserCfg(UserCfgFile, data)
		for _, w := range warns {
			a.log.Warn("user config problem", "err", w.String())
		}
		return cfg, nil
	}}
	a.tokenCfg = cachedFile[[]byte]{name: TokenCfgFile, parse: func(data []byte) ([]byte, error) { return data, nil }}
	parsePub := func(data []byte) (*rsa.PublicKey, error) {
		if data == nil {
			return nil, nil
		}
		return ticket.ParsePublicKey(data)
	}
	a.pub = cachedFile[*rsa.PublicKey]{name: AuthPubFile, parse: parsePub}
	a.pubOld = cachedFile[*rsa.PublicKey]{name: AuthPubOldFile, parse: parsePub}
	a.priv = cachedFile[*rsa.PrivateKey]{name: AuthKeyFile, parse: func(data []byte) (*rsa.PrivateKey, error) {
		if data == nil {
			return nil, nil
		}
		return ticket.ParsePrivateKey(data)
	}}
	a.csrf = cachedFile[string]{name: WWWKeyFile, parse: func(data []byte) (string, error) {
		if data == nil {
			return "", fmt.Errorf("read %s: %w", WWWKeyFile, fs.ErrNotExist)
		}
		return ticket.CSRFSecret(data), nil
	}}
	a.tfaCfg = cachedFile[*tfa.Config]{name: TFAFile, parse: tfa.Parse}
	a.domains = cachedFile[map[string]Realm]{name: DomainsFile, parse: func(data []byte) (map[string]Realm, error) {
		return ParseDomains(data), nil
	}}
	a.tokenNets = cachedFile[tokenNetSets]{name: TokenNetworksFile, parse: parseTokenNetSets}
	for _, l := range []**slog.Logger{&a.userCfg.log, &a.tokenCfg.log, &a.pub.log, &a.pubOld.log,
		&a.priv.log, &a.csrf.log, &a.domains.log, &a.tokenNets.log} {
		*l = a.log
	}
	return a, nil
}

// Invalidate makes the next call re-check every cached file, for a caller
// that has just written one of them.
func (a *Authenticator) Invalidate() {
	a.userCfg.invalidate()
	a.tokenCfg.invalidate()
	a.pub.invalidate()
	a.pubOld.invalidate()
	a.priv.invalidate()
	a.csrf.invalidate()
	a.domains.invalidate()
	a.tokenNets.invalidate()
	a.tfaCfg.invalidate()
}

// Realms returns the realms of domains.cfg (cached; read only), nil when it
// cannot be read.
func (a *Authenticator) Realms() map[string]Realm {
	r, _, err := a.domains.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return nil
	}
	return r
}

// TFALockStatus returns the second-factor lock state of userid from the
// cached priv/tfa.cfg (PVE's tfa_lock_status); ok is false when the user
// has no entry there or the file cannot be read.
func (a *Authenticator) TFALockStatus(userid string) (tfa.LockStatus, bool) {
	now := a.deps.Clock()
	c, _, err := a.tfaCfg.get(a.deps.FS, now)
	if err != nil || c == nil {
		return tfa.LockStatus{}, false
	}
	return c.LockStatus(userid, now)
}

// UserCfg returns the current user.cfg. The value is shared: do not modify
// it. If the file cannot be read, the result holds only PVE's defaults.
func (a *Authenticator) UserCfg() *UserCfg {
	cfg, err := a.loadUserCfg()
	if err != nil {
		return NewUserCfg()
	}
	return cfg
}

// loadUserCfg returns the current user.cfg, or the error that prevents
// reading it (authentication fails closed on it, as PVE's does).
func (a *Authenticator) loadUserCfg() (*UserCfg, error) {
	cfg, _, err := a.userCfg.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return nil, fmt.Errorf("load access control list: %w", err)
	}
	return cfg, nil
}

// publicKeys returns the current and the rotated verification key.
func (a *Authenticator) publicKeys(now time.Time) []ticket.PublicKey {
	keys := make([]ticket.PublicKey, 0, 2)
	for _, f := range []struct {
		c       *cachedFile[*rsa.PublicKey]
		rotated bool
	}{{&a.pub, false}, {&a.pubOld, true}} {
		k, mtime, err := f.c.get(a.deps.FS, now)
		if err == nil && k != nil {
			keys = append(keys, ticket.PublicKey{Key: k, ModTime: mtime, Rotated: f.rotated})
		}
	}
	return keys
}

// verifyLoginTicket verifies a PVE login ticket and returns its data.
func (a *Authenticator) verifyLoginTicket(tk string, now time.Time) (string, error) {
	data, _, err := ticket.VerifyCached(a.sigs, tk, ticket.PrefixLogin, "", a.publicKeys(now), now, a.deps.Quorate())
	return data, err
}

// AuthenticateTicket verifies a login ticket (PVEAuthCookie) and returns
// the user id, which must exist, be enabled and not expired. Half-login
// (TFA) tickets are refused.
func (a *Authenticator) AuthenticateTicket(tk string) (string, error) {
	now := a.deps.Clock()
	data, err := a.verifyLoginTicket(tk, now)
	if err != nil {
		return "", &AuthError{Reason: "invalid ticket"}
	}
	switch {
	case strings.HasPrefix(data, "!tfa!"):
		return "", &AuthError{Reason: "half-login ticket"}
	case strings.HasPrefix(data, "tfa!"), strings.HasPrefix(data, "u2f!"):
		return "", &AuthError{User: data, Reason: "incomplete ticket", Err: ErrIncompleteTicket}
	}
	if !ValidUserID(data) {
		return "", &AuthError{User: data, Reason: "invalid user id in ticket"}
	}
	cfg, err := a.loadUserCfg()
	if err != nil {
		return "", &AuthError{User: data, Reason: err.Error()}
	}
	if err := cfg.Active(data, now.Unix()); err != nil {
		return "", &AuthError{User: data, Reason: err.Error()}
	}
	return data, nil
}

// AuthenticateToken is AuthenticateTokenFrom without a client address: a
// token restricted to networks (TokenNetworksFile) is refused.
func (a *Authenticator) AuthenticateToken(ctx context.Context, tokenID, secret string) (string, error) {
	return a.AuthenticateTokenFrom(ctx, tokenID, secret, netip.Addr{})
}

// AuthenticateTokenFrom checks an API token used from client: well-formed
// id, token and owner in user.cfg, owner enabled and neither expired,
// secret matching, and client inside the token's allowed networks if it
// has any (checked last, so that the refusal says a valid secret was used
// from elsewhere; the answer is the same as for any bad token). It returns
// the token id, which is the authenticated identity.
func (a *Authenticator) AuthenticateTokenFrom(ctx context.Context, tokenID, secret string, client netip.Addr) (string, error) {
	if _, _, err := ticket.ParseTokenID(tokenID); err != nil {
		return "", &AuthError{User: tokenID, Reason: err.Error()}
	}
	cfg, err := a.loadUserCfg()
	if err != nil {
		return "", &AuthError{User: tokenID, Reason: err.Error()}
	}
	if err := cfg.Active(tokenID, a.deps.Clock().Unix()); err != nil {
		return "", &AuthError{User: tokenID, Reason: err.Error()}
	}
	if err := a.verifySecret(ctx, tokenID, secret); err != nil {
		return "", &AuthError{User: tokenID, Reason: err.Error()}
	}
	if err := a.checkTokenNetwork(tokenID, client); err != nil {
		if errors.Is(err, ErrTokenNetwork) {
			a.log.Warn("api token refused: client outside its allowed networks", "token", tokenID, "client", client)
			return "", &AuthError{ClientIP: addrString(client), User: tokenID, Reason: err.Error(), Err: ErrTokenNetwork}
		}
		return "", &AuthError{ClientIP: addrString(client), User: tokenID, Reason: err.Error()}
	}
	return tokenID, nil
}

// addrString is a's text, "" for the zero Addr.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (a *Authenticator) verifySecret(ctx context.Context, tokenID, secret string) error {
	if a.deps.VerifySecret != nil {
		return a.deps.VerifySecret(ctx, tokenID, secret)
	}
	return a.VerifyTokenSecret(tokenID, secret)
}

// VerifyTokenSecret checks secret against priv/token.cfg (root only). It is
// the default secret check, and what pvedaemon answers pveproxy with.
func (a *Authenticator) VerifyTokenSecret(tokenID, secret string) error {
	data, _, err := a.tokenCfg.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return fmt.Errorf("verify token secret: %w", err)
	}
	return VerifyTokenSecret(data, tokenID, secret)
}

// LoginResult is the answer to a successful POST /access/ticket.
type LoginResult struct {
	Username            string                    `json:"username"`
	Ticket              string                    `json:"ticket"`
	CSRFPreventionToken string                    `json:"CSRFPreventionToken"`
	Cap                 map[string]map[string]int `json:"cap,omitempty"`
	// NeedTFA is 1 when Ticket is a half-login ticket carrying a second
	// factor challenge (no cap then).
	NeedTFA int `json:"NeedTFA,omitempty"`
}

// Login implements POST /access/ticket for a user and password (no second
// factor given): see LoginWith.
func (a *Authenticator) Login(ctx context.Context, username, password, realm, clientIP string) (*LoginResult, error) {
	return a.LoginWith(ctx, LoginParams{Username: username, Password: password, Realm: realm, ClientIP: clientIP})
}

// LoginParams are the inputs of POST /access/ticket.
type LoginParams struct {
	Username, Password, Realm string
	// OTP is a second factor given with the password ("totp:123456").
	OTP string
	// TFAChallenge is the half-login ticket of the first step; Password is
	// then the second factor's answer ("totp:123456", "recovery:...").
	TFAChallenge string
	ClientIP     string
}

// LoginWith implements POST /access/ticket as PVE does: username (with
// "@realm" appended when realm is set) must exist, be enabled and not
// expired; password is checked through PAM (pam realm) or priv/shadow.cfg
// (pve realm), or may be a valid ticket of the same user or of root@pam
// (renewal). A user with second factors gets a half-login ticket with the
// challenge (NeedTFA) unless OTP answers it at once; the answer to that
// challenge (TFAChallenge set) gets the full ticket. A new ticket is signed
// (rotating the auth key first when it is due). Every failure is an
// *AuthError (ErrAuthFailed).
func (a *Authenticator) LoginWith(ctx context.Context, p LoginParams) (*LoginResult, error) {
	var userid string
	var ch *tfa.Challenge
	var err error
	if p.TFAChallenge != "" {
		userid, err = a.secondFactor(ctx, p)
	} else {
		userid, ch, err = a.checkCredentials(ctx, p.Username, p.Password, p.Realm, p.ClientIP, true)
		if err == nil && ch != nil && p.OTP != "" {
			err = a.verifyTFA(ctx, userid, ch, p.OTP, p.ClientIP)
			ch = nil
		}
	}
	if err != nil {
		noteLoginFailure(ctx, err)
		return nil, err
	}
	now := a.deps.Clock()
	key, err := a.signingKey(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", userid, err)
	}
	data, aad := userid, ""
	if ch != nil {
		js, err := ch.Marshal()
		if err != nil {
			return nil, fmt.Errorf("login %s: %w", userid, err)
		}
		data, aad = tfaTicketPrefix+string(js), userid
	}
	tk, err := ticket.Sign(key, ticket.PrefixLogin, data, aad, now)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", userid, err)
	}
	csrf, err := a.CSRFToken(userid)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", userid, err)
	}
	res := &LoginResult{Username: userid, Ticket: tk, CSRFPreventionToken: csrf}
	if ch != nil {
		res.NeedTFA = 1
		audit.SetReason(ctx, "second factor required")
	} else {
		res.Cap = a.UserCfg().Caps(userid)
	}
	return res, nil
}

// VerifyLogin implements the verify mode of POST /access/ticket (path and
// privs given): the password (or a ticket of the same user) must be valid
// and the user must hold all privs on path. It returns the user id; the
// caller adds "cap".
func (a *Authenticator) VerifyLogin(ctx context.Context, username, password, realm, clientIP, path string, privs []string) (_ string, err error) {
	defer func() {
		if err != nil {
			noteLoginFailure(ctx, err)
		}
	}()
	// As PVE's verify mode, a correct password suffices: no second factor.
	userid, _, err := a.checkCredentials(ctx, username, password, realm, clientIP, false)
	if err != nil {
		return "", err
	}
	p, ok := NormalizePath(path)
	if !ok {
		return "", &AuthError{ClientIP: clientIP, User: userid, Reason: "invalid path - " + path}
	}
	if len(privs) == 0 || !a.CheckPrivs(userid, p, privs, false) {
		return "", &AuthError{ClientIP: clientIP, User: userid,
			Reason: fmt.Sprintf("no permission (%s, %s)", path, strings.Join(privs, ","))}
	}
	return userid, nil
}

// checkCredentials validates a login attempt and returns the user id and,
// when the user must answer a second factor, its challenge. rootTickets
// allows tickets of root@pam to log in as any user. A ticket renewal needs
// no second factor.
func (a *Authenticator) checkCredentials(ctx context.Context, username, password, realm, clientIP string, rootTickets bool) (string, *tfa.Challenge, error) {
	userid := username
	if realm != "" {
		userid += "@" + realm
	}
	fail := func(reason string, err error) error {
		return &AuthError{ClientIP: clientIP, User: userid, Reason: reason, Err: err}
	}
	ruid, realmName, err := ticket.ParseUserID(userid)
	if err != nil {
		return "", nil, fail(err.Error(), nil)
	}
	now := a.deps.Clock()
	cfg, err := a.loadUserCfg()
	if err != nil {
		return "", nil, fail(err.Error(), nil)
	}
	if err := cfg.Active(userid, now.Unix()); err != nil {
		return "", nil, fail(err.Error(), nil)
	}
	if strings.HasPrefix(password, ticket.PrefixLogin+":") {
		if data, err := a.verifyLoginTicket(password, now); err == nil {
			switch {
			case data == userid || (rootTickets && data == RootUser):
				return userid, nil, nil // renewal
			case strings.HasPrefix(data, "tfa!"+userid), strings.HasPrefix(data, "u2f!"+userid+"!"):
				return "", nil, fail("incomplete ticket", ErrIncompleteTicket)
			}
		}
	}
	if password == "" {
		return "", nil, fail("no password", nil)
	}
	domains, _, err := a.domains.get(a.deps.FS, now)
	if err != nil {
		return "", nil, fail(err.Error(), nil)
	}
	r, ok := domains[realmName]
	if !ok {
		return "", nil, fail(fmt.Sprintf("auth domain '%s' does not exist", realmName), nil)
	}
	switch r.Type {
	case "pam":
		if err := a.deps.PAM(a.deps.PAMService, ruid, password, clientIP); err != nil {
			return "", nil, fail(err.Error(), nil)
		}
	case "pve":
		data, err := a.deps.FS.ReadFileOrEmpty(ShadowFile)
		if err != nil {
			return "", nil, fail(err.Error(), nil)
		}
		shadow, _ := ParseShadow(ShadowFile, data)
		if err := shadow.VerifyPassword(ruid, password); err != nil {
			return "", nil, fail(err.Error(), nil)
		}
	default:
		return "", nil, fail(fmt.Sprintf("realm type '%s' is not supported", r.Type), nil)
	}
	ch, err := a.tfaChallenge(cfg, userid, r)
	if err != nil {
		return "", nil, fail(err.Error(), err)
	}
	return userid, ch, nil
}

// CSRFToken returns a CSRFPreventionToken for userid.
func (a *Authenticator) CSRFToken(userid string) (string, error) {
	now := a.deps.Clock()
	secret, _, err := a.csrf.get(a.deps.FS, now)
	if err != nil {
		return "", fmt.Errorf("csrf token: %w", err)
	}
	return ticket.CSRFToken(secret, userid, now), nil
}

// CSRFSecret returns the cluster's CSRF secret (from pve-www.key, cached
// like the other access files); SPICE proxy tickets are signed with it.
func (a *Authenticator) CSRFSecret() (string, error) {
	secret, _, err := a.csrf.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return "", fmt.Errorf("csrf secret: %w", err)
	}
	return secret, nil
}

// VerifyCSRF checks a CSRFPreventionToken of userid; the error wraps
// ticket.ErrInvalidCSRF for a bad token.
func (a *Authenticator) VerifyCSRF(userid, token string) error {
	now := a.deps.Clock()
	secret, _, err := a.csrf.get(a.deps.FS, now)
	if err != nil {
		return fmt.Errorf("verify csrf token: %w", err)
	}
	if err := ticket.VerifyCSRF(secret, userid, token, now); err != nil {
		return fmt.Errorf("verify csrf token of %s: %w", userid, err)
	}
	return nil
}

// Permissions returns authid's privileges on path (see
// UserCfg.Permissions); a user or token that is unknown, disabled or
// expired has none.
func (a *Authenticator) Permissions(authid, path string) PrivSet {
	cfg := a.UserCfg()
	if cfg.Active(authid, a.deps.Clock().Unix()) != nil {
		return PrivSet{}
	}
	return cfg.Permissions(authid, path)
}

// CheckPrivs reports whether authid holds all of privs on path, or any of
// them with any set (see UserCfg.CheckPrivs); inactive ids hold nothing.
func (a *Authenticator) CheckPrivs(authid, path string, privs []string, anyOf bool) bool {
	cfg := a.UserCfg()
	if cfg.Active(authid, a.deps.Clock().Unix()) != nil {
		return false
	}
	return a.memoPermissions(cfg, authid, path).Allows(privs, anyOf)
}

// permMemo remembers computed privilege sets for one parsed user.cfg, which
// the Authenticator never modifies; a new parse gets a new memo. Bounded:
// emptied when full.
type permMemo struct {
	cfg *UserCfg
	n   atomic.Int64
	m   sync.Map // permKey -> PrivSet
}

type permKey struct{ authid, path string }

// permMemoMax bounds the memo: callers choose paths (/vms/<any vmid>).
const permMemoMax = 16384

// memoPermissions is cfg.Permissions, computed once per user, path and
// user.cfg version: permission checks run on most requests and the ACL walk
// allocates.
func (a *Authenticator) memoPermissions(cfg *UserCfg, authid, path string) PrivSet {
	memo := a.perms.Load()
	if memo == nil || memo.cfg != cfg {
		fresh := &permMemo{cfg: cfg}
		if a.perms.CompareAndSwap(memo, fresh) {
			memo = fresh
		} else if memo = a.perms.Load(); memo.cfg != cfg {
			return cfg.Permissions(authid, path) // another version raced in
		}
	}
	k := permKey{authid, path}
	if v, ok := memo.m.Load(k); ok {
		return v.(PrivSet)
	}
	ps := cfg.Permissions(authid, path)
	if memo.n.Add(1) > permMemoMax {
		memo.m.Clear()
		memo.n.Store(1)
	}
	memo.m.Store(k, ps)
	return ps
}

// PermissionsTree answers GET /access/permissions without a path (see
// UserCfg.PermissionsTree); inactive ids get an empty map.
func (a *Authenticator) PermissionsTree(authid string) map[string]map[string]int {
	cfg := a.UserCfg()
	if cfg.Active(authid, a.deps.Clock().Unix()) != nil {
		return map[string]map[string]int{}
	}
	return cfg.PermissionsTree(authid)
}

// Caps computes the "cap" object of the login response (see
// UserCfg.Caps); inactive ids get empty groups.
func (a *Authenticator) Caps(authid string) map[string]map[string]int {
	cfg := a.UserCfg()
	if cfg.Active(authid, a.deps.Clock().Unix()) != nil {
		return emptyCaps()
	}
	return cfg.Caps(authid)
}

// signingKey returns the private key for new tickets, creating or rotating
// the key pair first when it is missing or due.
func (a *Authenticator) signingKey(ctx context.Context, now time.Time) (*rsa.PrivateKey, error) {
	if _, err := a.RotateKeyIfNeeded(ctx); err != nil {
		return nil, err
	}
	key, _, err := a.priv.get(a.deps.FS, now)
	if err != nil {
		return nil, fmt.Errorf("load auth key: %w", err)
	}
	if key == nil {
		return nil, fmt.Errorf("load auth key: %s: %w", AuthKeyFile, fs.ErrNotExist)
	}
	return key, nil
}

// keyRotationDue applies PVE's rule: the pair is missing, the public key is
// at least 24 h old, or it lies more than the grace period in the future
// (unless the rotated key is recent enough to explain that).
func (a *Authenticator) keyRotationDue(now time.Time) bool {
	pub, mtime, err := a.pub.get(a.deps.FS, now)
	if err != nil || pub == nil {
		return true
	}
	priv, _, err := a.priv.get(a.deps.FS, now)
	if err != nil || priv == nil {
		return true
	}
	n, m := now.Unix(), mtime.Unix()
	switch {
	case n-m >= ticket.KeyLifetime:
		return true
	case m > n+ticket.Grace:
		old, oldMtime, err := a.pubOld.get(a.deps.FS, now)
		if err == nil && old != nil {
			om := oldMtime.Unix()
			if m >= om && m-om < ticket.Lifetime {
				return false
			}
		}
		return true
	}
	return false
}

// RotateKeyIfNeeded creates the auth key pair when it is missing and
// rotates it when it is due (see keyRotationDue) and the cluster is
// quorate: the current public key becomes authkey.pub.old, then the new
// public and private keys are written. It runs under the config root's lock
// of priv/authkey.key and reports whether it changed the keys.
func (a *Authenticator) RotateKeyIfNeeded(ctx context.Context) (bool, error) {
	if !a.keyRotationDue(a.deps.Clock()) {
		return false, nil
	}
	if !a.deps.Quorate() {
		return false, nil
	}
	a.rotateMu.Lock()
	defer a.rotateMu.Unlock()
	unlock, err := a.deps.FS.Lock(ctx, AuthKeyFile)
	if err != nil {
		return false, fmt.Errorf("rotate auth key: %w", err)
	}
	defer unlock()
	// re-check with the lock held: another process may have rotated
	a.pub.invalidate()
	a.pubOld.invalidate()
	a.priv.invalidate()
	now := a.deps.Clock()
	if !a.keyRotationDue(now) {
		return false, nil
	}
	if err := a.deps.FS.MkdirAll("priv", 0o700); err != nil {
		return false, fmt.Errorf("rotate auth key: %w", err)
	}
	oldPub, _, err := a.pub.get(a.deps.FS, now)
	if err == nil && oldPub != nil {
		pem, err := ticket.MarshalPublicKey(oldPub)
		if err != nil {
			return false, fmt.Errorf("rotate auth key: %w", err)
		}
		if err := a.writeShared(AuthPubOldFile, pem); err != nil {
			return false, fmt.Errorf("rotate auth key: store old key: %w", err)
		}
	}
	privPEM, pubPEM, err := ticket.GenerateAuthKey()
	if err != nil {
		return false, fmt.Errorf("rotate auth key: %w", err)
	}
	if err := a.writeShared(AuthPubFile, pubPEM); err != nil {
		return false, fmt.Errorf("rotate auth key: %w", err)
	}
	if err := a.deps.FS.WriteFile(AuthKeyFile, privPEM, 0o600); err != nil {
		// a public key without its private key would make every new
		// ticket fail; remove both so the next attempt starts over
		_ = a.deps.FS.Remove(AuthPubFile)
		return false, fmt.Errorf("rotate auth key: %w", err)
	}
	a.Invalidate()
	a.log.Info("auth key rotated")
	return true, nil
}

// EnsureKeys creates the auth key pair and pve-www.key when they are
// missing (pvedaemon calls it at start).
func (a *Authenticator) EnsureKeys(ctx context.Context) error {
	if _, err := a.RotateKeyIfNeeded(ctx); err != nil {
		return err
	}
	a.rotateMu.Lock()
	defer a.rotateMu.Unlock()
	unlock, err := a.deps.FS.Lock(ctx, WWWKeyFile)
	if err != nil {
		return fmt.Errorf("ensure %s: %w", WWWKeyFile, err)
	}
	defer unlock()
	if _, err := a.deps.FS.Stat(WWWKeyFile); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ensure %s: %w", WWWKeyFile, err)
	}
	privPEM, _, err := ticket.GenerateAuthKey()
	if err != nil {
		return fmt.Errorf("ensure %s: %w", WWWKeyFile, err)
	}
	if err := a.writeShared(WWWKeyFile, privPEM); err != nil {
		return fmt.Errorf("ensure %s: %w", WWWKeyFile, err)
	}
	a.csrf.invalidate()
	return nil
}

// writeShared writes a file unprivileged daemons read: mode 0640, group
// KeyGID when the file is new.
func (a *Authenticator) writeShared(name string, data []byte) error {
	_, statErr := a.deps.FS.Stat(name)
	if err := a.deps.FS.WriteFile(name, data, 0o640); err != nil {
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) && a.deps.KeyGID > 0 {
		p, err := a.deps.FS.Path(name)
		if err != nil {
			return err
		}
		if err := os.Chown(p, -1, a.deps.KeyGID); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
	}
	return nil
}

// UpdateUserCfg runs a read-modify-write of user.cfg under its lock: fn
// gets a freshly parsed private copy (lines PVE would drop are dropped) and
// the result is written back in PVE's format. An error from fn aborts
// without writing.
func UpdateUserCfg(ctx context.Context, root *pvefs.Root, fn func(*UserCfg) error) error {
	return root.Update(ctx, UserCfgFile, 0o640, func(old []byte) ([]byte, error) {
		cfg, _ := ParseUserCfg(UserCfgFile, old)
		if err := fn(cfg); err != nil {
			return nil, err
		}
		return cfg.Marshal(), nil
	})
}

// UpdateTokenSecrets runs a read-modify-write of priv/token.cfg under its
// lock.
func UpdateTokenSecrets(ctx context.Context, root *pvefs.Root, fn func(TokenSecrets) error) error {
	if err := root.MkdirAll("priv", 0o700); err != nil {
		return err
	}
	return root.Update(ctx, TokenCfgFile, 0o600, func(old []byte) ([]byte, error) {
		s, _ := ParseTokenCfg(TokenCfgFile, old)
		if err := fn(s); err != nil {
			return nil, err
		}
		return s.Marshal(), nil
	})
}

// SetPassword stores the SHA-256 crypt hash of password for the pve realm
// user (name without realm) in priv/shadow.cfg.
func SetPassword(ctx context.Context, root *pvefs.Root, user, password string) error {
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if err := root.MkdirAll("priv", 0o700); err != nil {
		return err
	}
	return root.Update(ctx, ShadowFile, 0o600, func(old []byte) ([]byte, error) {
		s, _ := ParseShadow(ShadowFile, old)
		s[user] = hash
		return s.Marshal(), nil
	})
}

// ticketCacheSize bounds the cache of verified ticket signatures: one entry
// per live ticket (a ticket lives two hours, the GUI renews it every 15
// minutes), so 16384 covers thousands of concurrent sessions.
const ticketCacheSize = 16384

// DaemonTicket issues a login ticket and CSRF token for userid without a
// password, for a root daemon of this node that acts as that user (as
// pvescheduler runs backup jobs as root@pam). Only a process that can read
// the private auth key can call it.
func (a *Authenticator) DaemonTicket(ctx context.Context, userid string) (tk, csrf string, err error) {
	now := a.deps.Clock()
	key, err := a.signingKey(ctx, now)
	if err != nil {
		return "", "", fmt.Errorf("ticket for %s: %w", userid, err)
	}
	if tk, err = ticket.Sign(key, ticket.PrefixLogin, userid, "", now); err != nil {
		return "", "", fmt.Errorf("ticket for %s: %w", userid, err)
	}
	if csrf, err = a.CSRFToken(userid); err != nil {
		return "", "", fmt.Errorf("ticket for %s: %w", userid, err)
	}
	return tk, csrf, nil
}
