package tfa

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Lockout limits; PVE uses proxmox-tfa's defaults.
const (
	// TOTPFailureLimit consecutive TOTP failures set totp-locked.
	TOTPFailureLimit = 8
	// TFAFailureLimit consecutive second-factor failures of any kind set
	// tfa-locked-until to now + TFALockSeconds.
	TFAFailureLimit = 100
	// TFALockSeconds is how long tfa-locked-until blocks all factors.
	TFALockSeconds = 3600
)

// The errors a failed second factor ends in, with PVE's messages (the
// login API reports all of them to the client as "authentication
// failure" and logs the message).
var (
	ErrTOTPLimit = errors.New("failed 2nd factor: TOTP limit reached, locked")
	ErrTFALimit  = errors.New("failed 1nd factor: TFA limit reached, user locked out")
	ErrFailed    = errors.New("failed 2nd factor")
	// ErrTOTPReused is the Reason for a valid code whose time step was
	// already accepted.
	ErrTOTPReused = errors.New("rejecting reused TOTP value")
)

// Challenge is what the first login step embeds in the half-login ticket
// ("!tfa!" followed by its JSON): which factors the user may answer with.
type Challenge struct {
	TOTP bool
	// Recovery lists the indices of the unused recovery keys; nil when the
	// user has no recovery set, empty (not nil) when all are used.
	Recovery []int
	// U2F and WebAuthn carry protocol challenge data; this package never
	// fills them, but keeps them when parsing a challenge.
	U2F, WebAuthn json.RawMessage
	Yubico        bool
}

// Challenge builds the login challenge for a user like proxmox-tfa, or
// returns nil when the user has no second factor, or only disabled ones.
// Enabled webauthn or u2f entries (whose challenges need a protocol this
// package does not implement) and unknown user data still yield a
// challenge, possibly "{}", so the login cannot skip the second factor.
func (c *Config) Challenge(userid string) *Challenge {
	u := c.Users[userid]
	if u == nil || (u.empty() && len(u.Extra) == 0) {
		return nil
	}
	ch := &Challenge{}
	unserved := len(u.Extra) > 0
	for _, e := range u.TOTP {
		ch.TOTP = ch.TOTP || e.Enable
	}
	if u.Recovery != nil {
		ch.Recovery = u.Recovery.Available()
	}
	for _, e := range u.WebAuthn {
		unserved = unserved || e.Enable
	}
	for _, e := range u.U2F {
		unserved = unserved || e.Enable
	}
	for _, e := range u.Yubico {
		ch.Yubico = ch.Yubico || e.Enable
	}
	if ch.empty() && !unserved {
		return nil
	}
	return ch
}

// YubicoChallenge is the challenge PVE's Perl code builds instead when the
// user's realm enforces Yubico OTP: yubico plus the recovery state.
func (c *Config) YubicoChallenge(userid string) *Challenge {
	ch := &Challenge{Yubico: true}
	if u := c.Users[userid]; u != nil && u.Recovery != nil {
		ch.Recovery = u.Recovery.Available()
	}
	return ch
}

func (ch *Challenge) empty() bool {
	return !ch.TOTP && ch.Recovery == nil && ch.U2F == nil && ch.WebAuthn == nil && !ch.Yubico
}

// Marshal writes the challenge as serde_json does:
// {"totp":true,"recovery":[0,1],"u2f":...,"webauthn":...,"yubico":true},
// false and absent members left out.
func (ch *Challenge) Marshal() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	if ch.TOTP {
		w.key("totp")
		w.bool(true)
	}
	if ch.Recovery != nil {
		w.key("recovery")
		w.open('[')
		for _, i := range ch.Recovery {
			w.sep()
			w.int(int64(i))
		}
		w.close(']')
	}
	if ch.U2F != nil {
		w.key("u2f")
		w.raw(ch.U2F)
	}
	if ch.WebAuthn != nil {
		w.key("webauthn")
		w.raw(ch.WebAuthn)
	}
	if ch.Yubico {
		w.key("yubico")
		w.bool(true)
	}
	w.close('}')
	if w.err != nil {
		return nil, fmt.Errorf("marshal tfa challenge: %w", w.err)
	}
	return w.buf.Bytes(), nil
}

// ParseChallenge reads a challenge back from the half-login ticket's data.
// Unknown members are ignored, as by PVE.
func ParseChallenge(data []byte) (*Challenge, error) {
	if err := checkJSONText(data); err != nil {
		return nil, fmt.Errorf("parse tfa challenge: %w", err)
	}
	ch := &Challenge{}
	_, err := fieldSet(data, isOneOf("totp", "recovery", "u2f", "webauthn", "yubico"), func(f Field) error {
		var err error
		switch f.Name {
		case "totp":
			ch.TOTP, err = decodeBool(f.Value)
		case "yubico":
			ch.Yubico, err = decodeBool(f.Value)
		case "u2f":
			if !isNull(f.Value) {
				ch.U2F = f.Value
			}
		case "webauthn":
			if !isNull(f.Value) {
				ch.WebAuthn = f.Value
			}
		case "recovery":
			if isNull(f.Value) {
				return nil
			}
			elems, err := decodeArray(f.Value)
			if err != nil {
				return err
			}
			ch.Recovery = make([]int, 0, len(elems))
			for _, el := range elems {
				_, n, err := decodeInt(el, 32, false)
				if err != nil {
					return err
				}
				ch.Recovery = append(ch.Recovery, int(n))
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("parse tfa challenge: %w", err)
	}
	return ch, nil
}

// Response is a parsed second-factor answer "TYPE:VALUE".
type Response struct {
	Type  Type   // totp, recovery, u2f or webauthn
	Value string // the code, recovery key or JSON text
}

// ParseResponse splits a second-factor answer: "totp:123456",
// "recovery:xxxx-xxxx-xxxx-xxxx", "u2f:{json}" or "webauthn:{json}".
// "yubico:" answers are handled by PVE's Perl code for Yubico realms only
// and are refused here like any other prefix.
func ParseResponse(s string) (Response, error) {
	for _, t := range []Type{TypeTOTP, TypeU2F, TypeWebAuthn, TypeRecovery} {
		v, ok := strings.CutPrefix(s, string(t)+":")
		if !ok {
			continue
		}
		if t == TypeU2F || t == TypeWebAuthn {
			if checkJSONText([]byte(v)) != nil || !json.Valid([]byte(v)) {
				return Response{}, fmt.Errorf("invalid %s response: not JSON", t)
			}
		}
		return Response{Type: t, Value: v}, nil
	}
	return Response{}, errors.New("invalid tfa response")
}

// CheckRealmType applies PVE's rule for realms that enforce a factor type
// (domains.cfg "tfa type=oath|yubico"): a response other than a recovery
// key must be of the realm's type ("oath" means totp). An empty realmType
// or response passes.
func CheckRealmType(realmType, response string) error {
	if realmType == "" || response == "" {
		return nil
	}
	if realmType == "oath" {
		realmType = string(TypeTOTP)
	}
	t, _, ok := strings.Cut(response, ":")
	if !ok || t == "" {
		return errors.New("bad otp response")
	}
	if t != string(TypeRecovery) && t != realmType {
		return fmt.Errorf("realm requires %s authentication", realmType)
	}
	return nil
}

// Result is the outcome of Verify.
type Result struct {
	OK bool
	// ConfigChanged (PVE's "needs-saving") means the Config was modified and
	// must be written back: a TOTP step recorded, a recovery key used up, a
	// lock set or cleared.
	ConfigChanged bool
	// CountersChanged means the ChallengeData was modified and must be
	// written back.
	CountersChanged  bool
	TOTPLimitReached bool // this failure set totp-locked
	TFALimitReached  bool // this failure set tfa-locked-until
	Locked           bool // refused without checking: the user or TOTP is locked
	// Reason says why the factor failed, for the log.
	Reason error
}

// Err is nil on success, else the error PVE's login dies with.
func (r Result) Err() error {
	switch {
	case r.TOTPLimitReached:
		return ErrTOTPLimit
	case r.TFALimitReached:
		return ErrTFALimit
	case !r.OK:
		return ErrFailed
	}
	return nil
}

// Verify checks the second login step's answer for userid against the
// challenge from the half-login ticket, with proxmox-tfa's semantics:
//
//   - a tfa-locked-until in the future refuses everything (Locked);
//   - totp: refused while totp-locked; the code must match an enabled key
//     at step -1, 0 or +1, and its step must be after the key's
//     last-count (else ErrTOTPReused), which it then becomes;
//   - recovery: the key is used up, and totp-locked, tfa-locked-until and
//     the TOTP failure counter are cleared;
//   - u2f and webauthn always fail here (no protocol support), like PVE
//     without a u2f/webauthn configuration;
//   - every failure counts in data (TOTP ones also in the TOTP counter);
//     reaching TOTPFailureLimit sets totp-locked, reaching TFAFailureLimit
//     sets tfa-locked-until = now + TFALockSeconds. Success resets them.
//
// data is the user's node-local challenge file; nil means an empty one.
// The error is only for an unparsable response, which PVE refuses before
// counting anything. The caller writes back c and data as Result says
// and should hold the tfa.cfg lock for a totp or recovery answer.
func (c *Config) Verify(userid string, ch *Challenge, response string, data *ChallengeData, now time.Time) (Result, error) {
	resp, err := ParseResponse(response)
	if err != nil {
		return Result{}, err
	}
	if data == nil {
		data = &ChallengeData{}
	}
	before := [2]uint32{data.TOTPFailures, data.TFAFailures}
	res := c.verify(userid, ch, resp, data, now)
	res.CountersChanged = before != [2]uint32{data.TOTPFailures, data.TFAFailures}
	return res, nil
}

func (c *Config) verify(userid string, ch *Challenge, resp Response, data *ChallengeData, now time.Time) Result {
	u := c.Users[userid]
	if u == nil {
		return Result{Reason: fmt.Errorf("no 2nd factor available for user '%s'", userid)}
	}
	if u.tfaLocked(now) {
		return Result{Locked: true, Reason: fmt.Errorf("refusing 2nd factor for user '%s'", userid)}
	}
	wasTOTP := resp.Type == TypeTOTP
	var err error
	changed := false
	switch resp.Type {
	case TypeTOTP:
		if u.TOTPLocked {
			return Result{Locked: true, Reason: fmt.Errorf("TOTP of user '%s' is locked", userid)}
		}
		changed, err = u.verifyTOTP(resp.Value, data, now)
	case TypeU2F:
		if ch == nil || ch.U2F == nil {
			err = fmt.Errorf("no u2f factor available for user '%s'", userid)
		} else {
			err = fmt.Errorf("u2f: %w", ErrUnsupported)
		}
	case TypeWebAuthn:
		err = fmt.Errorf("webauthn: %w", ErrUnsupported)
	case TypeRecovery:
		if u.Recovery != nil && u.Recovery.use(resp.Value) {
			changed = true
			u.TOTPLocked = false
			u.TFALockedUntil = nil
			data.TOTPFailures = 0
		} else {
			err = errors.New("recovery verification failed")
		}
	}
	if err == nil {
		if wasTOTP {
			data.TOTPFailures = 0
		}
		data.TFAFailures = 0
		return Result{OK: true, ConfigChanged: changed}
	}
	data.TFAFailures++
	res := Result{
		Reason:           err,
		TFALimitReached:  data.TFAFailures >= TFAFailureLimit,
		TOTPLimitReached: wasTOTP && data.TOTPFailures >= TOTPFailureLimit,
	}
	if res.TOTPLimitReached {
		u.TOTPLocked = true
	}
	if res.TFALimitReached {
		t := now.Unix() + TFALockSeconds
		u.TFALockedUntil = &t
	}
	res.ConfigChanged = res.TOTPLimitReached || res.TFALimitReached
	return res
}

// verifyTOTP tries the enabled keys in order; the first that matches
// decides. It reports whether the config changed (the step recorded).
func (u *User) verifyTOTP(code string, data *ChallengeData, now time.Time) (bool, error) {
	for i := range u.TOTP {
		e := &u.TOTP[i]
		if !e.Enable {
			continue
		}
		step, ok, err := e.Key.Match(code, now)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		if e.LastCount != nil && step <= *e.LastCount {
			data.TOTPFailures++
			return false, ErrTOTPReused
		}
		e.LastCount = &step
		data.TOTPFailures = 0
		return true, nil
	}
	data.TOTPFailures++
	return false, errors.New("totp verification failed")
}
