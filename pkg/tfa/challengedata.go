package tfa

import (
	"encoding/json"
	"fmt"
	"time"
)

// ChallengeDir is where PVE keeps each user's node-local challenge file,
// named by user id (mode 0600, locked with flock while in use).
const ChallengeDir = "/run/pve-private/tfa-challenges"

// ChallengeTimeout is how long pending u2f/webauthn challenges stay valid.
const ChallengeTimeout = 2 * time.Minute

// ChallengeData is a user's node-local challenge file: pending u2f and
// webauthn challenges (kept verbatim) and the failure counters behind the
// lockout. Unlike tfa.cfg it is neither cluster-wide nor kept across a
// reboot (/run is a tmpfs).
type ChallengeData struct {
	U2FRegistrations      []json.RawMessage
	U2FAuths              []json.RawMessage
	WebAuthnRegistrations []json.RawMessage
	WebAuthnAuths         []json.RawMessage
	TOTPFailures          uint32 // consecutive TOTP failures
	TFAFailures           uint32 // consecutive second-factor failures
	Extra                 []Field
}

// ParseChallengeData reads a challenge file; empty content is an empty
// file. (PVE starts from an empty state when the file does not parse;
// that choice is left to the caller.)
func ParseChallengeData(data []byte) (*ChallengeData, error) {
	d := &ChallengeData{}
	if len(data) == 0 {
		return d, nil
	}
	if err := checkJSONText(data); err != nil {
		return nil, fmt.Errorf("parse tfa challenge data: %w", err)
	}
	lists := map[string]*[]json.RawMessage{
		"u2f_registrations":      &d.U2FRegistrations,
		"u2f_auths":              &d.U2FAuths,
		"webauthn_registrations": &d.WebAuthnRegistrations,
		"webauthn_auths":         &d.WebAuthnAuths,
	}
	known := func(n string) bool {
		_, ok := lists[n]
		return ok || n == "totp_failures" || n == "tfa_failures"
	}
	extra, err := fieldSet(data, known, func(f Field) error {
		var err error
		switch f.Name {
		case "totp_failures":
			d.TOTPFailures, err = decodeUint32(f.Value)
		case "tfa_failures":
			d.TFAFailures, err = decodeUint32(f.Value)
		default:
			*lists[f.Name], err = decodeArray(f.Value)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("parse tfa challenge data: %w", err)
	}
	d.Extra = extra
	return d, nil
}

// Marshal writes the file as PVE does: compact JSON, empty lists and zero
// counters left out.
func (d *ChallengeData) Marshal() ([]byte, error) {
	w := &jsonWriter{}
	w.open('{')
	for _, l := range []struct {
		name  string
		items []json.RawMessage
	}{
		{"u2f_registrations", d.U2FRegistrations},
		{"u2f_auths", d.U2FAuths},
		{"webauthn_registrations", d.WebAuthnRegistrations},
		{"webauthn_auths", d.WebAuthnAuths},
	} {
		if len(l.items) == 0 {
			continue
		}
		w.key(l.name)
		w.open('[')
		for _, it := range l.items {
			w.sep()
			w.raw(it)
		}
		w.close(']')
	}
	if d.TOTPFailures != 0 {
		w.key("totp_failures")
		w.uint(uint64(d.TOTPFailures))
	}
	if d.TFAFailures != 0 {
		w.key("tfa_failures")
		w.uint(uint64(d.TFAFailures))
	}
	w.extras(d.Extra)
	w.close('}')
	if w.err != nil {
		return nil, fmt.Errorf("marshal tfa challenge data: %w", w.err)
	}
	return w.buf.Bytes(), nil
}

// Prune drops pending challenges created before now - ChallengeTimeout
// (or without a readable "created"), as PVE does when loading the file.
func (d *ChallengeData) Prune(now time.Time) {
	cutoff := now.Add(-ChallengeTimeout).Unix()
	for _, l := range []*[]json.RawMessage{&d.U2FRegistrations, &d.U2FAuths, &d.WebAuthnRegistrations, &d.WebAuthnAuths} {
		kept := (*l)[:0]
		for _, it := range *l {
			var c struct {
				Created *int64 `json:"created"`
			}
			if json.Unmarshal(it, &c) == nil && c.Created != nil && *c.Created >= cutoff {
				kept = append(kept, it)
			}
		}
		*l = kept
	}
}
