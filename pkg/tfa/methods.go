package tfa

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Type is a factor type as the API names it.
type Type string

// The factor types of PVE's TFA API.
const (
	TypeTOTP     Type = "totp"
	TypeU2F      Type = "u2f"
	TypeWebAuthn Type = "webauthn"
	TypeRecovery Type = "recovery"
	TypeYubico   Type = "yubico"
)

// recoveryID is the fixed id of a user's recovery key set.
const recoveryID = "recovery"

var (
	// ErrNoSuchEntry is returned by Delete and Update when the user has no
	// entry with that id (PVE: "no such entry").
	ErrNoSuchEntry = errors.New("no such entry")
	// ErrUnsupported is returned for u2f and webauthn registrations, which
	// need the WebAuthn/U2F protocol this package does not implement.
	ErrUnsupported = errors.New("not supported by this implementation")
)

// TypedInfo is one entry of GET /access/tfa/{userid}.
type TypedInfo struct {
	Type Type
	Info
}

// MarshalJSON writes {type, id, description, created, enable} leaving out
// an empty description and enable when true, as PVE's API does.
func (t TypedInfo) MarshalJSON() ([]byte, error) {
	w := &jsonWriter{}
	writeTypedInfo(w, t)
	return w.buf.Bytes(), nil
}

func writeTypedInfo(w *jsonWriter, t TypedInfo) {
	w.open('{')
	w.key("type")
	w.str(string(t.Type))
	w.key("id")
	w.str(t.ID)
	if t.Description != "" {
		w.key("description")
		w.str(t.Description)
	}
	w.key("created")
	w.int(t.Created)
	if !t.Enable {
		w.key("enable")
		w.bool(false)
	}
	w.close('}')
}

// UserEntries is one element of GET /access/tfa.
type UserEntries struct {
	UserID         string
	Entries        []TypedInfo
	TOTPLocked     bool
	TFALockedUntil *int64 // only while the lock lasts
}

// MarshalJSON writes {userid, entries, totp-locked, tfa-locked-until},
// the last two only when set.
func (e UserEntries) MarshalJSON() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	w.key("userid")
	w.str(e.UserID)
	w.key("entries")
	w.open('[')
	for _, t := range e.Entries {
		w.sep()
		writeTypedInfo(w, t)
	}
	w.close(']')
	if e.TOTPLocked {
		w.key("totp-locked")
		w.bool(true)
	}
	if e.TFALockedUntil != nil {
		w.key("tfa-locked-until")
		w.int(*e.TFALockedUntil)
	}
	w.close('}')
	return w.buf.Bytes(), nil
}

// entries lists a user's factors in PVE's order: the recovery set first,
// then totp, webauthn, u2f and yubico entries.
func (u *User) entries() []TypedInfo {
	out := []TypedInfo{}
	if u.Recovery != nil {
		out = append(out, recoveryInfo(u.Recovery))
	}
	for _, e := range u.TOTP {
		out = append(out, TypedInfo{TypeTOTP, e.Info})
	}
	for _, e := range u.WebAuthn {
		out = append(out, TypedInfo{TypeWebAuthn, e.Info})
	}
	for _, e := range u.U2F {
		out = append(out, TypedInfo{TypeU2F, e.Info})
	}
	for _, e := range u.Yubico {
		out = append(out, TypedInfo{TypeYubico, e.Info})
	}
	return out
}

func recoveryInfo(r *Recovery) TypedInfo {
	return TypedInfo{TypeRecovery, Info{ID: recoveryID, Created: r.Created, Enable: true}}
}

// ListUser is GET /access/tfa/{userid}: the user's entries (empty, not
// nil, for a user without any).
func (c *Config) ListUser(userid string) []TypedInfo {
	if u := c.Users[userid]; u != nil {
		return u.entries()
	}
	return []TypedInfo{}
}

// ListAll is GET /access/tfa before the permission filter: every user in
// the file, sorted by id, with lock state (an expired lock is left out).
func (c *Config) ListAll(now time.Time) []UserEntries {
	out := []UserEntries{}
	for _, id := range sortedUserIDs(c.Users) {
		u := c.Users[id]
		e := UserEntries{UserID: id, Entries: u.entries(), TOTPLocked: u.TOTPLocked}
		if u.TFALockedUntil != nil && *u.TFALockedUntil > now.Unix() {
			t := *u.TFALockedUntil
			e.TFALockedUntil = &t
		}
		out = append(out, e)
	}
	return out
}

// Entry is GET /access/tfa/{userid}/{id}. Ids are searched in totp,
// webauthn, u2f, yubico order; "recovery" names the recovery set.
func (c *Config) Entry(userid, id string) (TypedInfo, bool) {
	u := c.Users[userid]
	if u == nil {
		return TypedInfo{}, false
	}
	if info := u.find(id); info != nil {
		return *info, true
	}
	if id == recoveryID && u.Recovery != nil {
		return recoveryInfo(u.Recovery), true
	}
	return TypedInfo{}, false
}

// find returns the first non-recovery entry with that id.
func (u *User) find(id string) *TypedInfo {
	ref := u.findRef(id)
	if ref == nil {
		return nil
	}
	return &TypedInfo{ref.typ, *ref.info}
}

type entryRef struct {
	typ   Type
	index int
	info  *Info
}

func (u *User) findRef(id string) *entryRef {
	for i := range u.TOTP {
		if u.TOTP[i].ID == id {
			return &entryRef{TypeTOTP, i, &u.TOTP[i].Info}
		}
	}
	for i := range u.WebAuthn {
		if u.WebAuthn[i].ID == id {
			return &entryRef{TypeWebAuthn, i, &u.WebAuthn[i].Info}
		}
	}
	for i := range u.U2F {
		if u.U2F[i].ID == id {
			return &entryRef{TypeU2F, i, &u.U2F[i].Info}
		}
	}
	for i := range u.Yubico {
		if u.Yubico[i].ID == id {
			return &entryRef{TypeYubico, i, &u.Yubico[i].Info}
		}
	}
	return nil
}

// Delete is DELETE /access/tfa/{userid}/{id}. When the user has no factor
// left the user is removed from the file (with any lock state) and
// hasEntriesLeft is false; PVE then clears the user's "keys" in user.cfg.
func (c *Config) Delete(userid, id string) (hasEntriesLeft bool, err error) {
	u := c.Users[userid]
	if u == nil {
		return false, ErrNoSuchEntry
	}
	if ref := u.findRef(id); ref != nil {
		switch ref.typ {
		case TypeTOTP:
			u.TOTP = removeAt(u.TOTP, ref.index)
		case TypeWebAuthn:
			u.WebAuthn = removeAt(u.WebAuthn, ref.index)
		case TypeU2F:
			u.U2F = removeAt(u.U2F, ref.index)
		case TypeYubico:
			u.Yubico = removeAt(u.Yubico, ref.index)
		}
	} else if id == recoveryID && u.Recovery != nil {
		u.Recovery = nil
	} else {
		return false, ErrNoSuchEntry
	}
	if u.empty() {
		delete(c.Users, userid)
		return false, nil
	}
	return true, nil
}

func removeAt[T any](s []T, i int) []T {
	return append(s[:i:i], s[i+1:]...)
}

// Update is PUT /access/tfa/{userid}/{id}: nil arguments are left alone.
// The recovery set cannot be updated.
func (c *Config) Update(userid, id string, description *string, enable *bool) error {
	u := c.Users[userid]
	if u == nil {
		return ErrNoSuchEntry
	}
	ref := u.findRef(id)
	if ref == nil {
		return ErrNoSuchEntry
	}
	if description != nil {
		ref.info.Description = *description
	}
	if enable != nil {
		ref.info.Enable = *enable
	}
	return nil
}

// AddParams are the parameters of POST /access/tfa/{userid} after the
// caller has checked the password and permissions.
type AddParams struct {
	Type        Type
	Description *string
	TOTP        *string // otpauth URI
	Value       *string // the current TOTP code, or the Yubico public key id
	Challenge   *string
}

// UpdateInfo is the result of POST /access/tfa/{userid}.
type UpdateInfo struct {
	ID        *string
	Challenge *string
	Recovery  []string // the new recovery keys, shown once
}

// MarshalJSON writes {id, challenge, recovery}; id is null when unset,
// the others are left out when empty.
func (u UpdateInfo) MarshalJSON() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	w.key("id")
	if u.ID != nil {
		w.str(*u.ID)
	} else {
		w.buf.WriteString("null")
	}
	if u.Challenge != nil {
		w.key("challenge")
		w.str(*u.Challenge)
	}
	if len(u.Recovery) > 0 {
		w.key("recovery")
		w.open('[')
		for _, k := range u.Recovery {
			w.sep()
			w.str(k)
		}
		w.close(']')
	}
	w.close('}')
	return w.buf.Bytes(), nil
}

// Add validates the parameters the way proxmox-tfa's add_tfa_entry does and
// adds the entry. For yubico the caller must first have checked an OTP
// with the Yubico server and pass the key's public id as Value, as PVE's
// API handler does. u2f and webauthn return ErrUnsupported.
func (c *Config) Add(userid string, p AddParams, now time.Time) (UpdateInfo, error) {
	return c.add(userid, p, now, rand.Reader)
}

func (c *Config) add(userid string, p AddParams, now time.Time, rnd io.Reader) (UpdateInfo, error) {
	needDescription := func() (string, error) {
		if p.Description == nil {
			return "", errors.New("'description' is required for new entries")
		}
		return *p.Description, nil
	}
	switch p.Type {
	case TypeTOTP:
		if p.Challenge != nil {
			return UpdateInfo{}, errors.New("'challenge' parameter is invalid for 'totp' entries")
		}
		desc, err := needDescription()
		if err != nil {
			return UpdateInfo{}, err
		}
		if p.TOTP == nil || p.Value == nil {
			return UpdateInfo{}, errors.New("'totp' type requires both 'totp' and 'value' parameters")
		}
		id, err := c.addTOTP(userid, desc, *p.TOTP, *p.Value, now, rnd)
		return UpdateInfo{ID: &id}, err
	case TypeWebAuthn, TypeU2F:
		if p.TOTP != nil {
			return UpdateInfo{}, fmt.Errorf("'totp' parameter is invalid for '%s' entries", p.Type)
		}
		return UpdateInfo{}, fmt.Errorf("%s registration: %w", p.Type, ErrUnsupported)
	case TypeRecovery:
		if p.TOTP != nil || p.Value != nil || p.Challenge != nil {
			return UpdateInfo{}, errors.New("generating recovery tokens does not allow additional parameters")
		}
		keys, err := c.addRecovery(userid, now, rnd)
		if err != nil {
			return UpdateInfo{}, err
		}
		id := recoveryID
		return UpdateInfo{ID: &id, Recovery: keys}, nil
	case TypeYubico:
		if p.TOTP != nil || p.Challenge != nil {
			return UpdateInfo{}, errors.New("'totp' and 'challenge' parameters are invalid for 'yubico' entries")
		}
		desc, err := needDescription()
		if err != nil {
			return UpdateInfo{}, err
		}
		if p.Value == nil {
			return UpdateInfo{}, errors.New("missing 'value' parameter for 'yubico' entry")
		}
		id, err := c.addYubico(userid, desc, *p.Value, now, rnd)
		return UpdateInfo{ID: &id}, err
	}
	return UpdateInfo{}, fmt.Errorf("unknown tfa type %q", p.Type)
}

// AddTOTP adds a TOTP key after checking that value is a current code for
// it (steps -1..+1), and returns the new entry's id. Unlike PVE, the step
// of that code is recorded as used, so it cannot be replayed for a login.
func (c *Config) AddTOTP(userid, description, uri, value string, now time.Time) (string, error) {
	return c.addTOTP(userid, description, uri, value, now, rand.Reader)
}

func (c *Config) addTOTP(userid, description, uri, value string, now time.Time, rnd io.Reader) (string, error) {
	key, err := ParseTOTP(uri)
	if err != nil {
		return "", err
	}
	step, ok, err := key.Match(value, now)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("failed to verify TOTP challenge")
	}
	info, err := newInfo(description, now, rnd)
	if err != nil {
		return "", err
	}
	u := c.user(userid)
	u.TOTP = append(u.TOTP, TOTPEntry{Info: info, Key: key, LastCount: &step})
	return info.ID, nil
}

// AddTOTPUnverified adds a TOTP key without a code check, as PVE does when
// it converts old user.cfg keys.
func (c *Config) AddTOTPUnverified(userid, description, uri string, now time.Time) (string, error) {
	key, err := ParseTOTP(uri)
	if err != nil {
		return "", err
	}
	info, err := newInfo(description, now, rand.Reader)
	if err != nil {
		return "", err
	}
	u := c.user(userid)
	u.TOTP = append(u.TOTP, TOTPEntry{Info: info, Key: key})
	return info.ID, nil
}

// AddRecovery creates the user's recovery key set and returns the keys,
// which are shown to the user once. A user has at most one set, even when
// all its keys are used; delete the "recovery" entry first.
func (c *Config) AddRecovery(userid string, now time.Time) ([]string, error) {
	return c.addRecovery(userid, now, rand.Reader)
}

func (c *Config) addRecovery(userid string, now time.Time, rnd io.Reader) ([]string, error) {
	if u := c.Users[userid]; u != nil && u.Recovery != nil {
		return nil, errors.New("user already has recovery keys")
	}
	r, keys, err := generateRecovery(rnd, now)
	if err != nil {
		return nil, err
	}
	c.user(userid).Recovery = r
	return keys, nil
}

// AddYubico adds a Yubico key id without any check.
func (c *Config) AddYubico(userid, description, key string, now time.Time) (string, error) {
	return c.addYubico(userid, description, key, now, rand.Reader)
}

func (c *Config) addYubico(userid, description, key string, now time.Time, rnd io.Reader) (string, error) {
	info, err := newInfo(description, now, rnd)
	if err != nil {
		return "", err
	}
	u := c.user(userid)
	u.Yubico = append(u.Yubico, YubicoEntry{Info: info, Key: key})
	return info.ID, nil
}

// user returns the user's data, creating it.
func (c *Config) user(userid string) *User {
	if c.Users == nil {
		c.Users = map[string]*User{}
	}
	u := c.Users[userid]
	if u == nil {
		u = &User{}
		c.Users[userid] = u
	}
	return u
}

func newInfo(description string, now time.Time, rnd io.Reader) (Info, error) {
	id, err := newUUID(rnd)
	if err != nil {
		return Info{}, err
	}
	return Info{ID: id, Description: description, Created: now.Unix(), Enable: true}, nil
}

// newUUID makes a random (version 4) UUID in libuuid's lower-case text
// form, as PVE's ids come from uuid_generate.
func newUUID(rnd io.Reader) (string, error) {
	u, err := uuid.NewRandomFromReader(rnd)
	if err != nil {
		return "", fmt.Errorf("generate entry id: %w", err)
	}
	return u.String(), nil
}

// RemoveUser drops a user's TFA data; it reports whether there was any.
func (c *Config) RemoveUser(userid string) bool {
	_, ok := c.Users[userid]
	delete(c.Users, userid)
	return ok
}

// HasType reports whether the user has entries of a type (enabled or not;
// for recovery: unused keys). "oath" is accepted for totp.
func (c *Config) HasType(userid string, t Type) bool {
	u := c.Users[userid]
	if u == nil {
		return false
	}
	switch t {
	case TypeTOTP, "oath":
		return len(u.TOTP) > 0
	case TypeU2F:
		return len(u.U2F) > 0
	case TypeWebAuthn:
		return len(u.WebAuthn) > 0
	case TypeYubico:
		return len(u.Yubico) > 0
	case TypeRecovery:
		return u.Recovery != nil && len(u.Recovery.Available()) > 0
	}
	return false
}

// YubicoKeys returns the user's enabled Yubico key ids joined by spaces,
// the form PVE passes to its Yubico check; ok is false without user data.
func (c *Config) YubicoKeys(userid string) (keys string, ok bool) {
	u := c.Users[userid]
	if u == nil {
		return "", false
	}
	var ks []string
	for _, e := range u.Yubico {
		if e.Enable {
			ks = append(ks, e.Key)
		}
	}
	return strings.Join(ks, " "), true
}

// LockStatus is a user's lockout state as PUT/GET /access/users report it.
type LockStatus struct {
	TOTPLocked     bool
	TFALockedUntil *int64
}

// MarshalJSON writes {totp-locked, tfa-locked-until}, each only when set.
func (s LockStatus) MarshalJSON() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	if s.TOTPLocked {
		w.key("totp-locked")
		w.bool(true)
	}
	if s.TFALockedUntil != nil {
		w.key("tfa-locked-until")
		w.int(*s.TFALockedUntil)
	}
	w.close('}')
	return w.buf.Bytes(), nil
}

// LockStatus returns a user's lock state; ok is false without user data.
// An expired tfa-locked-until is left out, as PVE drops it on load.
func (c *Config) LockStatus(userid string, now time.Time) (s LockStatus, ok bool) {
	u := c.Users[userid]
	if u == nil {
		return LockStatus{}, false
	}
	s.TOTPLocked = u.TOTPLocked
	if t := u.TFALockedUntil; t != nil && *t >= now.Unix() {
		v := *t
		s.TFALockedUntil = &v
	}
	return s, true
}

// Unlock is PUT /access/users/{userid}/unlock-tfa: it resets the user's
// failure counters (data may be nil when the node has none) and clears
// totp-locked and tfa-locked-until. It reports whether the user was locked.
func (c *Config) Unlock(userid string, data *ChallengeData, now time.Time) (wasLocked bool, err error) {
	if data != nil {
		data.TOTPFailures, data.TFAFailures = 0, 0
	}
	u := c.Users[userid]
	if u == nil {
		return false, errors.New("no such user")
	}
	wasLocked = u.TOTPLocked || u.tfaLocked(now)
	u.TOTPLocked = false
	u.TFALockedUntil = nil
	return wasLocked, nil
}

func (u *User) tfaLocked(now time.Time) bool {
	return u.TFALockedUntil != nil && now.Unix() < *u.TFALockedUntil
}
