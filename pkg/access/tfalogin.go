package access

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pvenode/pvenode/pkg/tfa"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// tfaTicketPrefix starts the data of a half-login ticket (PVE's
// create_ticket_do): "!tfa!" and the challenge as JSON; the ticket is
// signed with the user id as additional data, so it is no login ticket and
// answers only for that user.
const tfaTicketPrefix = "!tfa!"

// errNeedsSecondFactor reasons.
var (
	errMissingKeys    = errors.New("missing required 2nd keys")
	errTFAUnsupported = ErrTFANotImplemented
)

// tfaChallenge returns the second-factor challenge of userid, or nil when
// the user has none: the entries of priv/tfa.cfg (PVE's
// authentication_challenge). A realm that enforces a second factor refuses
// users without one; realm-enforced Yubico OTP is not implemented.
func (a *Authenticator) tfaChallenge(cfg *UserCfg, userid string, r Realm) (*tfa.Challenge, error) {
	data, err := a.deps.FS.ReadFileOrEmpty(TFAFile)
	if err != nil {
		return nil, err
	}
	var ch *tfa.Challenge
	if len(data) > 0 {
		tc, err := tfa.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", TFAFile, err)
		}
		ch = tc.Challenge(userid)
	}
	if r.TFA != "" {
		if strings.Contains(r.TFA, "yubico") {
			return nil, fmt.Errorf("realm %s: Yubico OTP: %w", r.TFA, errTFAUnsupported)
		}
		if ch == nil {
			return nil, errMissingKeys
		}
	}
	if ch == nil {
		if u := cfg.Users[userid]; u != nil && u.Keys != "" && u.Keys != "x" {
			// Keys from before priv/tfa.cfg, which PVE converts on login.
			return nil, fmt.Errorf("legacy second factor keys in user.cfg: %w", errTFAUnsupported)
		}
	}
	return ch, nil
}

// secondFactor checks the answer (p.Password) to the challenge of a
// half-login ticket (p.TFAChallenge) and returns the user id.
func (a *Authenticator) secondFactor(ctx context.Context, p LoginParams) (string, error) {
	userid := p.Username
	if p.Realm != "" {
		userid += "@" + p.Realm
	}
	fail := func(reason string, err error) error {
		return &AuthError{ClientIP: p.ClientIP, User: userid, Reason: reason, Err: err}
	}
	if p.OTP != "" {
		return "", fail("TFA response should be in 'password', not 'otp' when 'tfa-challenge' is set", nil)
	}
	now := a.deps.Clock()
	cfg, err := a.loadUserCfg()
	if err != nil {
		return "", fail(err.Error(), nil)
	}
	if err := cfg.Active(userid, now.Unix()); err != nil {
		return "", fail(err.Error(), nil)
	}
	data, _, err := ticket.Verify(p.TFAChallenge, ticket.PrefixLogin, userid, a.publicKeys(now), now, a.deps.Quorate())
	if err != nil {
		return "", fail(err.Error(), nil)
	}
	js, ok := strings.CutPrefix(data, tfaTicketPrefix)
	if !ok {
		return "", fail("invalid tfa challenge ticket", nil)
	}
	ch, err := tfa.ParseChallenge([]byte(js))
	if err != nil {
		return "", fail(err.Error(), nil)
	}
	if err := a.verifyTFA(ctx, userid, ch, p.Password, p.ClientIP); err != nil {
		return "", err
	}
	return userid, nil
}

// verifyTFA checks response against ch under the tfa.cfg lock, writing
// back what the check changed (a used TOTP step, a used recovery key,
// locks) and the failure counters.
func (a *Authenticator) verifyTFA(ctx context.Context, userid string, ch *tfa.Challenge, response, clientIP string) error {
	fail := func(err error) error {
		return &AuthError{ClientIP: clientIP, User: userid, Reason: err.Error(), Err: err}
	}
	_, realm, _ := strings.Cut(userid, "@")
	domains, _, err := a.domains.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return fail(err)
	}
	if r, ok := domains[realm]; ok && r.TFA != "" {
		if err := tfa.CheckRealmType(realmTFAType(r.TFA), response); err != nil {
			return fail(err)
		}
	}
	var verdict error
	err = UpdateTFACfg(ctx, a.deps.FS, a.deps.Clock(), func(tc *tfa.Config) (bool, error) {
		counters, err := a.loadTFACounters(userid)
		if err != nil {
			return false, err
		}
		res, err := tc.Verify(userid, ch, response, counters, a.deps.Clock())
		if err != nil {
			return false, err
		}
		if res.CountersChanged {
			if err := a.saveTFACounters(userid, counters); err != nil {
				return false, err
			}
		}
		verdict = res.Err()
		return res.ConfigChanged, nil
	})
	if err != nil {
		return fail(err)
	}
	if verdict != nil {
		return fail(verdict)
	}
	return nil
}

// realmTFAType is the type of a realm's tfa option ("oath" or "yubico").
func realmTFAType(opt string) string {
	props, err := ParseRealmTFA(opt)
	if err != nil {
		return ""
	}
	return props["type"]
}

// tfaCountersPath is where the failure counters of userid are kept:
// node-local, as PVE's /run/pve-private/tfa-challenges/<userid>.
func (a *Authenticator) tfaCountersPath(userid string) string {
	return filepath.Join(a.TFAChallengeDir(), userid)
}

func (a *Authenticator) loadTFACounters(userid string) (*tfa.ChallengeData, error) {
	data, err := os.ReadFile(a.tfaCountersPath(userid))
	if errors.Is(err, fs.ErrNotExist) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := tfa.ParseChallengeData(data)
	if err != nil { // unreadable counters start again from zero
		return tfa.ParseChallengeData(nil)
	}
	return d, nil
}

func (a *Authenticator) saveTFACounters(userid string, d *tfa.ChallengeData) error {
	return writeTFACounters(a.tfaCountersPath(userid), d)
}

// writeTFACounters replaces a user's counter file (node-local, root only)
// by rename. Callers hold the tfa.cfg lock.
func writeTFACounters(path string, d *tfa.ChallengeData) error {
	data, err := d.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
