package access

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/tfa"
)

// ReadTFACfg reads priv/tfa.cfg without its lock, as PVE's
// cfs_read_file('priv/tfa.cfg') does: a missing file is an empty
// configuration, and tfa-locked-until values before now are dropped as
// PVE's parser drops them.
func ReadTFACfg(root *pvefs.Root, now time.Time) (*tfa.Config, error) {
	data, err := root.ReadFileOrEmpty(TFAFile)
	if err != nil {
		return nil, err
	}
	cfg, err := tfa.Parse(data)
	if err != nil {
		return nil, err
	}
	cfg.ExpireLocks(now)
	return cfg, nil
}

// UpdateTFACfg runs a read-modify-write of priv/tfa.cfg under its lock
// (PVE's lock_tfa_config): fn gets the parsed file (expired locks dropped,
// as by ReadTFACfg) and reports whether it must be written back. Nothing is
// written when fn returns false or an error; fn's error is returned
// unchanged. The file is written with mode 0600 (priv/ is created 0700).
//
// PVE takes the user.cfg lock inside this one, never the other way round;
// fn may therefore call UpdateUserCfg.
func UpdateTFACfg(ctx context.Context, root *pvefs.Root, now time.Time, fn func(*tfa.Config) (write bool, err error)) error {
	if err := root.MkdirAll("priv", 0o700); err != nil {
		return err
	}
	return root.Update(ctx, TFAFile, 0o600, func(old []byte) ([]byte, error) {
		cfg, err := tfa.Parse(old)
		if err != nil {
			return nil, err
		}
		cfg.ExpireLocks(now)
		write, err := fn(cfg)
		if err != nil {
			return nil, err
		}
		if !write {
			return old, nil
		}
		return cfg.Marshal()
	})
}

// migratedKeysRe matches a user.cfg "keys" value meaning "the factors are
// in priv/tfa.cfg" ("x", or "x!" and a legacy type), per PVE's TFA.pm.
var migratedKeysRe = regexp.MustCompile(`^x(?:!.*)?$`)

// HasOldTFAKeys reports whether a user.cfg "keys" value holds keys from
// before priv/tfa.cfg (realm-enforced TOTP secrets or Yubico key ids),
// which PVE converts into tfa.cfg entries (see AddOldTFAKeys) when a user
// adds a factor, and then replaces by "x".
func HasOldTFAKeys(keys string) bool {
	return keys != "" && keys != "0" && !migratedKeysRe.MatchString(keys)
}

// AddOldTFAKeys adds the old user.cfg keys of userid to cfg, as PVE's
// add_old_keys_to_realm_tfa does: realmTFA is the user's realm's parsed
// "tfa" option (ParseRealmTFA; nil when the realm has none, and then the
// keys mean nothing and are ignored). For type oath each TOTP secret (hex
// "v2-0x…" or 40 digits, base32 "v2-…" or 16 characters) becomes an
// unverified TOTP entry with the realm's digits and step; for yubico each
// key id becomes a Yubico entry. Entries are described "<old userconfig
// key N>". Secrets PVE cannot read are skipped; those it reads but cannot
// add are returned as warnings (PVE warns about them).
func AddOldTFAKeys(cfg *tfa.Config, userid, keys string, realmTFA map[string]string, now time.Time) (warnings []error) {
	if realmTFA == nil {
		return nil
	}
	switch realmTFA["type"] {
	case "oath":
		digits, step := realmTFA["digits"], realmTFA["step"]
		if digits == "" || digits == "0" {
			digits = "6"
		}
		if step == "" || step == "0" {
			step = "30"
		}
		prefix := "otpauth://totp/Proxmox%20VE:" + uriEscape("Old key for "+userid) + "?digits=" + digits + "&period=" + step + "&algorithm=SHA1&secret="
		n := 0
		for _, key := range splitPVEList(keys) {
			secret, ok := normalizeOldTOTPSecret(key)
			if !ok {
				continue
			}
			desc := fmt.Sprintf("<old userconfig key %d>", n)
			n++
			if _, err := cfg.AddTOTPUnverified(userid, desc, prefix+secret, now); err != nil {
				warnings = append(warnings, err)
			}
		}
	case "yubico":
		for n, key := range splitPVEList(keys) {
			if _, err := cfg.AddYubico(userid, fmt.Sprintf("<old userconfig key %d>", n), key, now); err != nil {
				warnings = append(warnings, err)
			}
		}
	}
	return warnings
}

var (
	oldHexV2Re    = regexp.MustCompile(`^v2-0x([0-9a-fA-F]+)$`)
	oldBase32V2Re = regexp.MustCompile(`^v2-([A-Z2-7=]+)$`)
	oldBase32Re   = regexp.MustCompile(`^[A-Z2-7=]{16}$`)
	oldHexRe      = regexp.MustCompile(`^[A-Fa-f0-9]{40}$`)
)

// normalizeOldTOTPSecret turns an old user.cfg TOTP secret into base32,
// or reports false for a form PVE does not read.
func normalizeOldTOTPSecret(key string) (string, bool) {
	var bin []byte
	var err error
	switch {
	case oldHexV2Re.MatchString(key):
		bin, err = decodeHexPadded(oldHexV2Re.FindStringSubmatch(key)[1])
	case oldBase32V2Re.MatchString(key):
		bin, err = decodeBase32Loose(oldBase32V2Re.FindStringSubmatch(key)[1])
	case oldBase32Re.MatchString(key):
		bin, err = decodeBase32Loose(key)
	case oldHexRe.MatchString(key):
		bin, err = hex.DecodeString(key)
	default:
		return "", false
	}
	if err != nil || len(bin) == 0 {
		return "", false
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(bin), true
}

// decodeHexPadded is Perl's pack('H*'): an odd last digit is padded with 0.
func decodeHexPadded(s string) ([]byte, error) {
	if len(s)%2 == 1 {
		s += "0"
	}
	return hex.DecodeString(s)
}

// decodeBase32Loose decodes base32 with or without '=' padding, dropping
// incomplete trailing bits as MIME::Base32 does.
func decodeBase32Loose(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.Contains(s, "=") {
		return nil, errors.New("misplaced padding")
	}
	switch len(s) % 8 { // lengths base32 cannot end on: drop the stray characters
	case 1, 3, 6:
		s = s[:len(s)-1]
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
}

// uriEscape is URI::Escape's uri_escape: every byte but [A-Za-z0-9-._~]
// is percent-encoded.
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// splitPVEList is PVE::Tools::split_list: NUL-separated when the text has
// a NUL, else separated by commas, semicolons and white space.
func splitPVEList(s string) []string {
	if strings.Contains(s, "\x00") {
		return strings.Split(s, "\x00")
	}
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
	})
}

// TFAChallengeDir is the node-local directory of the users' TFA challenge
// files with their failure counters (PVE's /run/pve-private/tfa-challenges):
// Deps.TFAStateDir, or tfa.ChallengeDir when that is empty.
func (a *Authenticator) TFAChallengeDir() string {
	if a.deps.TFAStateDir != "" {
		return a.deps.TFAStateDir
	}
	return tfa.ChallengeDir
}

// ResetTFAFailures zeroes the failure counters in userid's challenge file
// under dir, as PVE's unlock does: a missing file is left missing, and the
// file is only rewritten when a counter was set. Callers hold the tfa.cfg
// lock, which the login's counter updates also hold.
func ResetTFAFailures(dir, userid string) error {
	if !ValidUserID(userid) {
		return fmt.Errorf("invalid user id '%s'", userid)
	}
	p := filepath.Join(dir, userid)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	d, err := tfa.ParseChallengeData(data)
	if err != nil {
		return fmt.Errorf("failed to read challenge data for user %s: %w", userid, err)
	}
	if d.TOTPFailures == 0 && d.TFAFailures == 0 {
		return nil
	}
	d.TOTPFailures, d.TFAFailures = 0, 0
	return writeTFACounters(p, d)
}
