package access

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/pvenode/pvenode/pkg/ticket"
)

// DomainsFile is the name of the realm configuration under the config root.
const DomainsFile = "domains.cfg"

// TFAFile is the name of the two-factor configuration under the config
// root (readable by root only).
const TFAFile = "priv/tfa.cfg"

// Realm is what login needs to know about a realm of domains.cfg.
type Realm struct {
	Type string // "pam", "pve", "ldap", "ad", "openid"
	// TFA is the realm-enforced second factor ("type=oath,..."), or "".
	TFA string
}

// The section config patterns, with Perl's \s (which unlike Go's includes
// \v) spelt out as [\t\n\v\f\r ].
var (
	sectionHeaderRe = regexp.MustCompile(`^([^\t\n\v\f\r ]+):[\t\n\v\f\r ]*([^\t\n\v\f\r ]+)[\t\n\v\f\r ]*$`)
	sectionBodyRe   = regexp.MustCompile(`^[\t\n\v\f\r ]+([^\t\n\v\f\r ]+)(?:[\t\n\v\f\r ]+(.*[^\t\n\v\f\r ]))?[\t\n\v\f\r ]*$`)
)

// knownRealmTypes are the realm types PVE 9 knows; sections of other
// types are skipped.
var knownRealmTypes = map[string]bool{"pam": true, "pve": true, "ldap": true, "ad": true, "openid": true}

// ParseDomains reads the realm types and realm TFA settings from
// domains.cfg (section config). The realms "pam" (type pam) and "pve"
// (type pve) always exist. Only the keys login needs are kept; anything
// unreadable is skipped, as the file is owned and validated by the realm
// API. As in PVE, the type is lowercased, a section ends at an empty line
// or a line "0", comment lines are skipped anywhere, a section of an
// unknown type or with an invalid realm id defines nothing, and a repeated
// "tfa" line (a duplicate attribute) or one without a value is ignored.
func ParseDomains(data []byte) map[string]Realm {
	realms := map[string]Realm{}
	cur := "" // the realm the section lines go to; "" while skipping one
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(trimSpace(line), "#") {
			continue
		}
		if !perlTrue(line) {
			in = false
			continue
		}
		if in {
			m := sectionBodyRe.FindStringSubmatch(line)
			if m == nil || cur == "" {
				continue
			}
			if r := realms[cur]; m[1] == "tfa" && m[2] != "" && r.TFA == "" {
				r.TFA = m[2]
				realms[cur] = r
			}
			continue
		}
		if m := sectionHeaderRe.FindStringSubmatch(line); m != nil {
			typ, id := strings.ToLower(m[1]), m[2]
			cur, in = "", true
			if _, dup := realms[id]; !dup && knownRealmTypes[typ] && ticket.ValidRealm(id) {
				// the first section of an id wins (PVE's SectionConfig
				// keeps the last; TestParseDomains pins the first)
				cur = id
				realms[id] = Realm{Type: typ}
			}
		}
	}
	for _, t := range []string{"pam", "pve"} {
		r := realms[t]
		r.Type = t
		realms[t] = r
	}
	return realms
}

// tfaConfig is the part of priv/tfa.cfg needed to tell whether a user has
// second factors.
type tfaConfig struct {
	Users map[string]map[string]json.RawMessage `json:"users"`
}

// tfaEntry is one factor of a user in tfa.cfg.
type tfaEntry struct {
	Enable *bool `json:"enable"`
}

// UserHasTFA reports whether priv/tfa.cfg lists a usable second factor for
// userid: an enabled TOTP, WebAuthn, U2F or Yubico entry, or a recovery key
// set. A file that is neither JSON nor empty is read as the legacy
// "<user>:<type>:<data>" line format. Undecodable content counts as TFA
// (fail closed).
func UserHasTFA(data []byte, userid string) bool {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return false
	}
	if !strings.HasPrefix(s, "{") {
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), userid+":") {
				return true
			}
		}
		return false
	}
	var cfg tfaConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return true
	}
	u, ok := cfg.Users[userid]
	if !ok {
		return false
	}
	for kind, raw := range u {
		switch kind {
		case "totp", "webauthn", "u2f", "yubico":
			var entries []tfaEntry
			if err := json.Unmarshal(raw, &entries); err != nil {
				return true
			}
			for _, e := range entries {
				if e.Enable == nil || *e.Enable {
					return true
				}
			}
		case "recovery":
			var rec struct {
				Entries []*string `json:"entries"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				return true
			}
			for _, e := range rec.Entries {
				if e != nil {
					return true
				}
			}
		}
	}
	return false
}
