package tfa

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// File is the path of the TFA configuration under the config root.
const File = "priv/tfa.cfg"

// Config is priv/tfa.cfg.
type Config struct {
	// Users maps a user id to the user's factors.
	Users map[string]*User
	// U2F and WebAuthn are the top-level "u2f" and "webauthn" objects. PVE
	// takes both settings from datacenter.cfg, ignores these on load and
	// never writes them; they are kept verbatim (nil when absent or null).
	U2F, WebAuthn json.RawMessage
	// Extra holds unknown top-level members verbatim.
	Extra []Field
	// Legacy is set when the input was the version 1 line format; Marshal
	// always writes JSON, as PVE does on its next write.
	Legacy bool
}

// User is one user's second factors and lockout state.
type User struct {
	TOTP     []TOTPEntry
	U2F      []RawEntry
	WebAuthn []RawEntry
	Recovery *Recovery
	Yubico   []YubicoEntry
	// TOTPLocked is set after too many TOTP failures; only a recovery key
	// or an administrator's unlock clears it.
	TOTPLocked bool
	// TFALockedUntil (unix epoch) blocks every factor until then after too
	// many second-factor failures. PVE drops an expired value on load; see
	// ExpireLocks.
	TFALockedUntil *int64
	// Extra holds unknown members verbatim. PVE refuses files with unknown
	// user members; a user with any is treated as having a factor this
	// package cannot serve (fail closed, see Challenge).
	Extra []Field
}

// Info is the descriptive part every factor entry has.
type Info struct {
	ID          string // a random UUID; "v1-entry" for imported legacy entries
	Description string
	Created     int64 // unix epoch
	Enable      bool  // default true
}

// TOTPEntry is a TOTP factor.
type TOTPEntry struct {
	Info
	Key TOTP
	// LastCount is the last time step accepted for this key (PVE's
	// "last-count"); nil before the first use. A code whose step is not
	// after it is refused as a replay.
	LastCount *int64
	// Extra and ValueExtra hold unknown members of the entry object and of
	// the {"totp","last-count"} object verbatim.
	Extra, ValueExtra []Field
}

// YubicoEntry is a Yubico OTP factor: the key's 12-character public id.
type YubicoEntry struct {
	Info
	Key   string
	Extra []Field
}

// RawEntry is a factor whose data this package does not interpret
// (webauthn credentials, u2f registrations): Entry is kept verbatim.
type RawEntry struct {
	Info
	Entry json.RawMessage
	Extra []Field
}

func (u *User) empty() bool {
	return len(u.TOTP) == 0 && len(u.U2F) == 0 && len(u.WebAuthn) == 0 &&
		len(u.Yubico) == 0 && u.Recovery == nil
}

// Parse reads tfa.cfg the way PVE's PVE::RS::TFA->new does: as JSON, and
// if that fails as the legacy version 1 line format (which an empty file
// also is).
func Parse(data []byte) (*Config, error) {
	cfg, jerr := parseJSON(data)
	if jerr == nil {
		return cfg, nil
	}
	cfg, lerr := parseLegacy(data)
	if lerr == nil {
		cfg.Legacy = strings.TrimSpace(string(data)) != ""
		return cfg, nil
	}
	return nil, fmt.Errorf("parse tfa config: neither valid JSON (%v) nor old style (%v)", jerr, lerr)
}

func parseJSON(data []byte) (*Config, error) {
	if err := checkJSONText(data); err != nil {
		return nil, err
	}
	cfg := &Config{Users: map[string]*User{}}
	extra, err := fieldSet(data, isOneOf("u2f", "webauthn", "users"), func(f Field) error {
		switch f.Name {
		case "u2f", "webauthn":
			if isNull(f.Value) {
				return nil
			}
			if f.Value[0] != '{' {
				return errors.New("expected an object")
			}
			if f.Name == "u2f" {
				cfg.U2F = f.Value
			} else {
				cfg.WebAuthn = f.Value
			}
			return nil
		}
		users, err := objectFields(f.Value)
		if err != nil {
			return err
		}
		for _, uf := range users {
			u, err := parseUser(uf.Value)
			if err != nil {
				return fmt.Errorf("user %q: %w", uf.Name, err)
			}
			cfg.Users[uf.Name] = u // a repeated user id: the last one wins
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	cfg.Extra = extra
	return cfg, nil
}

func isOneOf(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

func parseUser(raw json.RawMessage) (*User, error) {
	u := &User{}
	known := isOneOf("totp", "u2f", "webauthn", "recovery", "yubico", "totp-locked", "tfa-locked-until")
	extra, err := fieldSet(raw, known, func(f Field) error {
		switch f.Name {
		case "totp":
			return eachEntry(f.Value, func(info Info, entry json.RawMessage, extra []Field) error {
				e, err := parseTOTPEntry(entry)
				if err != nil {
					return err
				}
				e.Info, e.Extra = info, extra
				u.TOTP = append(u.TOTP, e)
				return nil
			})
		case "u2f", "webauthn":
			return eachEntry(f.Value, func(info Info, entry json.RawMessage, extra []Field) error {
				if entry[0] != '{' {
					return errors.New("entry: expected an object")
				}
				e := RawEntry{Info: info, Entry: entry, Extra: extra}
				if f.Name == "u2f" {
					u.U2F = append(u.U2F, e)
				} else {
					u.WebAuthn = append(u.WebAuthn, e)
				}
				return nil
			})
		case "yubico":
			return eachEntry(f.Value, func(info Info, entry json.RawMessage, extra []Field) error {
				key, err := decodeString(entry)
				if err != nil {
					return fmt.Errorf("entry: %w", err)
				}
				u.Yubico = append(u.Yubico, YubicoEntry{Info: info, Key: key, Extra: extra})
				return nil
			})
		case "recovery":
			if isNull(f.Value) {
				return nil
			}
			r, err := parseRecovery(f.Value)
			u.Recovery = r
			return err
		case "totp-locked":
			b, err := decodeBool(f.Value)
			u.TOTPLocked = b
			return err
		case "tfa-locked-until":
			if isNull(f.Value) {
				return nil
			}
			t, err := decodeInt64(f.Value)
			u.TFALockedUntil = &t
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u.Extra = extra
	return u, nil
}

// eachEntry parses an array of {id, description, created, enable, entry}.
func eachEntry(raw json.RawMessage, fn func(Info, json.RawMessage, []Field) error) error {
	elems, err := decodeArray(raw)
	if err != nil {
		return err
	}
	for i, el := range elems {
		info := Info{Enable: true}
		var entry json.RawMessage
		var hasID, hasCreated bool
		known := isOneOf("id", "description", "created", "enable", "entry")
		extra, err := fieldSet(el, known, func(f Field) error {
			var err error
			switch f.Name {
			case "id":
				hasID = true
				info.ID, err = decodeString(f.Value)
			case "description":
				info.Description, err = decodeString(f.Value)
			case "created":
				hasCreated = true
				info.Created, err = decodeInt64(f.Value)
			case "enable":
				info.Enable, err = decodeBool(f.Value)
			case "entry":
				entry = f.Value
			}
			return err
		})
		switch {
		case err != nil:
		case !hasID:
			err = errors.New("missing field \"id\"")
		case !hasCreated:
			err = errors.New("missing field \"created\"")
		case entry == nil:
			err = errors.New("missing field \"entry\"")
		default:
			err = fn(info, entry, extra)
		}
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// parseTOTPEntry reads a TOTP entry value: the URI string, or an object
// {"totp": URI, "last-count": N}.
func parseTOTPEntry(raw json.RawMessage) (TOTPEntry, error) {
	var e TOTPEntry
	if raw[0] == '"' {
		uri, err := decodeString(raw)
		if err != nil {
			return e, err
		}
		e.Key, err = ParseTOTP(uri)
		return e, err
	}
	if raw[0] != '{' {
		return e, errors.New("expected a totp string or a TotpEntry struct")
	}
	hasKey := false
	extra, err := fieldSet(raw, isOneOf("totp", "last-count"), func(f Field) error {
		if f.Name == "totp" {
			uri, err := decodeString(f.Value)
			if err != nil {
				return err
			}
			hasKey = true
			e.Key, err = ParseTOTP(uri)
			return err
		}
		n, err := decodeInt64(f.Value)
		if n != math.MinInt64 { // PVE's "never used" marker
			e.LastCount = &n
		}
		return err
	})
	if err != nil {
		return e, err
	}
	if !hasKey {
		return e, errors.New("missing field \"totp\"")
	}
	e.ValueExtra = extra
	return e, nil
}

func parseRecovery(raw json.RawMessage) (*Recovery, error) {
	r := &Recovery{}
	var hasSecret, hasEntries, hasCreated bool
	extra, err := fieldSet(raw, isOneOf("secret", "entries", "created"), func(f Field) error {
		var err error
		switch f.Name {
		case "secret":
			hasSecret = true
			r.Secret, err = decodeString(f.Value)
		case "created":
			hasCreated = true
			r.Created, err = decodeInt64(f.Value)
		case "entries":
			hasEntries = true
			elems, err := decodeArray(f.Value)
			if err != nil {
				return err
			}
			r.Entries = make([]*string, 0, len(elems))
			for _, el := range elems {
				if isNull(el) {
					r.Entries = append(r.Entries, nil)
					continue
				}
				s, err := decodeString(el)
				if err != nil {
					return err
				}
				r.Entries = append(r.Entries, &s)
			}
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case !hasSecret:
		return nil, errors.New("missing field \"secret\"")
	case !hasEntries:
		return nil, errors.New("missing field \"entries\"")
	case !hasCreated:
		return nil, errors.New("missing field \"created\"")
	}
	r.Extra = extra
	return r, nil
}

// Marshal writes the configuration as PVE does (serde_json::to_vec):
// compact JSON, no trailing newline, members in PVE's declaration order,
// empty lists and default values omitted. PVE's users map has no stable
// order; users are written sorted by id. Members kept verbatim come after
// the known ones.
func (c *Config) Marshal() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	if c.U2F != nil {
		w.key("u2f")
		w.raw(c.U2F)
	}
	if c.WebAuthn != nil {
		w.key("webauthn")
		w.raw(c.WebAuthn)
	}
	if len(c.Users) > 0 {
		w.key("users")
		w.open('{')
		for _, id := range sortedUserIDs(c.Users) {
			w.key(id)
			writeUser(w, c.Users[id])
		}
		w.close('}')
	}
	w.extras(c.Extra)
	w.close('}')
	if w.err != nil {
		return nil, fmt.Errorf("marshal tfa config: %w", w.err)
	}
	return w.buf.Bytes(), nil
}

func sortedUserIDs(m map[string]*User) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func writeUser(w *jsonWriter, u *User) {
	w.open('{')
	if len(u.TOTP) > 0 {
		w.key("totp")
		w.open('[')
		for _, e := range u.TOTP {
			w.sep()
			writeEntry(w, e.Info, e.Extra, func() {
				if e.LastCount == nil && len(e.ValueExtra) == 0 {
					w.str(e.Key.URI())
					return
				}
				w.open('{')
				w.key("totp")
				w.str(e.Key.URI())
				if e.LastCount != nil {
					w.key("last-count")
					w.int(*e.LastCount)
				}
				w.extras(e.ValueExtra)
				w.close('}')
			})
		}
		w.close(']')
	}
	writeRaw := func(name string, entries []RawEntry) {
		if len(entries) == 0 {
			return
		}
		w.key(name)
		w.open('[')
		for _, e := range entries {
			w.sep()
			writeEntry(w, e.Info, e.Extra, func() { w.raw(e.Entry) })
		}
		w.close(']')
	}
	writeRaw("u2f", u.U2F)
	writeRaw("webauthn", u.WebAuthn)
	if r := u.Recovery; r != nil {
		w.key("recovery")
		w.open('{')
		w.key("secret")
		w.str(r.Secret)
		w.key("entries")
		w.open('[')
		for _, e := range r.Entries {
			w.sep()
			if e == nil {
				w.buf.WriteString("null")
			} else {
				w.str(*e)
			}
		}
		w.close(']')
		w.key("created")
		w.int(r.Created)
		w.extras(r.Extra)
		w.close('}')
	}
	if len(u.Yubico) > 0 {
		w.key("yubico")
		w.open('[')
		for _, e := range u.Yubico {
			w.sep()
			writeEntry(w, e.Info, e.Extra, func() { w.str(e.Key) })
		}
		w.close(']')
	}
	if u.TOTPLocked {
		w.key("totp-locked")
		w.bool(true)
	}
	if u.TFALockedUntil != nil {
		w.key("tfa-locked-until")
		w.int(*u.TFALockedUntil)
	}
	w.extras(u.Extra)
	w.close('}')
}

func writeEntry(w *jsonWriter, info Info, extra []Field, entry func()) {
	w.open('{')
	w.key("id")
	w.str(info.ID)
	if info.Description != "" {
		w.key("description")
		w.str(info.Description)
	}
	w.key("created")
	w.int(info.Created)
	if !info.Enable {
		w.key("enable")
		w.bool(false)
	}
	w.key("entry")
	entry()
	w.extras(extra)
	w.close('}')
}

// ExpireLocks drops tfa-locked-until values that lie before now, as PVE's
// parser does on every load; call it after Parse when the output must
// match what PVE would write. It reports whether anything changed.
func (c *Config) ExpireLocks(now time.Time) bool {
	changed := false
	for _, u := range c.Users {
		if u.TFALockedUntil != nil && *u.TFALockedUntil < now.Unix() {
			u.TFALockedUntil = nil
			changed = true
		}
	}
	return changed
}
