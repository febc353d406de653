package tfa

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Legacy (version 1, before PVE 7) entries get this fixed info.
const (
	legacyID          = "v1-entry"
	legacyDescription = "<old version 1 entry>"
)

// parseLegacy reads the version 1 format: one "USER:TYPE:BASE64(JSON)" line
// per user, TYPE oath, yubico or u2f; blank lines and lines starting with
// '#' are skipped, a later line for the same user replaces the earlier.
func parseLegacy(data []byte) (*Config, error) {
	cfg := &Config{Users: map[string]*User{}}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		line = trimASCIISpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		parts := bytes.SplitN(line, []byte(":"), 3)
		if len(parts) != 3 {
			return nil, errors.New("bad line in tfa config")
		}
		if !utf8.Valid(parts[0]) {
			return nil, errors.New("bad non-utf8 username in tfa config")
		}
		user := string(parts[0])
		raw, err := decodeBase64Indifferent(string(parts[2]), base64.RawStdEncoding)
		if err != nil {
			return nil, fmt.Errorf("failed to decode data in tfa config entry - %w", err)
		}
		u, err := decodeLegacyEntry(string(parts[1]), raw, user)
		if err != nil {
			return nil, err
		}
		cfg.Users[user] = u
	}
	return cfg, nil
}

func decodeLegacyEntry(typ string, data []byte, user string) (*User, error) {
	if err := checkJSONText(data); err != nil || !json.Valid(data) {
		return nil, errors.New("failed to parse json data in tfa entry")
	}
	info := Info{ID: legacyID, Description: legacyDescription, Enable: true}
	u := &User{}
	switch typ {
	case "u2f":
		entry, err := decodeLegacyU2F(data)
		if err != nil {
			return nil, err
		}
		if entry != nil {
			u.U2F = append(u.U2F, RawEntry{Info: info, Entry: entry})
		}
	case "oath":
		keys, err := decodeLegacyOath(data, user)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			u.TOTP = append(u.TOTP, TOTPEntry{Info: info, Key: k})
		}
	case "yubico":
		obj, err := legacyObject(data, "yubico")
		if err != nil {
			return nil, err
		}
		keys, err := takeLegacyString(obj, "keys", "yubico")
		if err != nil {
			return nil, err
		}
		for _, k := range splitLegacyKeys(keys) {
			u.Yubico = append(u.Yubico, YubicoEntry{Info: info, Key: k})
		}
	default:
		return nil, fmt.Errorf("unknown tfa.cfg entry type: %q", typ)
	}
	return u, nil
}

func legacyObject(data []byte, what string) (map[string]json.RawMessage, error) {
	if len(bytes.TrimLeft(data, " \t\r\n")) == 0 || bytes.TrimLeft(data, " \t\r\n")[0] != '{' {
		return nil, fmt.Errorf("bad json type for %s registration", what)
	}
	fields, err := objectFields(data)
	if err != nil {
		return nil, fmt.Errorf("bad json type for %s registration", what)
	}
	obj := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		obj[f.Name] = f.Value
	}
	return obj, nil
}

func takeLegacyString(obj map[string]json.RawMessage, what, in string) (string, error) {
	v, ok := obj[what]
	if !ok {
		return "", fmt.Errorf("missing '%s' value in %s entry", what, in)
	}
	delete(obj, what)
	s, err := decodeString(v)
	if err != nil {
		return "", fmt.Errorf("bad '%s' value", what)
	}
	return s, nil
}

// decodeLegacyU2F converts {keyHandle, publicKey} into the registration
// object proxmox-tfa stores; a pending registration (with "challenge") is
// dropped (nil, nil).
func decodeLegacyU2F(data []byte) (json.RawMessage, error) {
	obj, err := legacyObject(data, "u2f")
	if err != nil {
		return nil, err
	}
	if _, ok := obj["challenge"]; ok {
		return nil, nil
	}
	handle, err := takeLegacyString(obj, "keyHandle", "u2f")
	if err != nil {
		return nil, err
	}
	handleBytes, err := decodeBase64Strict(handle, base64.RawURLEncoding)
	if err != nil {
		return nil, errors.New("handle in u2f entry")
	}
	pub, err := takeLegacyString(obj, "publicKey", "u2f")
	if err != nil {
		return nil, err
	}
	pubBytes, err := decodeBase64Indifferent(pub, base64.RawStdEncoding)
	if err != nil {
		return nil, errors.New("bad public key in u2f entry")
	}
	if len(obj) != 0 {
		return nil, errors.New("invalid extra data in u2f entry")
	}
	w := &jsonWriter{}
	w.open('{')
	w.key("key")
	w.open('{')
	w.key("keyHandle")
	w.str(base64.RawURLEncoding.EncodeToString(handleBytes))
	w.key("version")
	w.str("U2F_V2") // PVE did not store it; only U2F_V2 existed
	w.close('}')
	w.key("public-key")
	w.str(base64.StdEncoding.EncodeToString(pubBytes))
	w.close('}')
	return w.buf.Bytes(), nil
}

// decodeLegacyOath turns {"keys": "K1 K2", "config": {step, digits}} into
// TOTP keys for account user (no issuer, SHA1).
func decodeLegacyOath(data []byte, user string) ([]TOTP, error) {
	obj, err := legacyObject(data, "oath")
	if err != nil {
		return nil, err
	}
	rawCfg, ok := obj["config"]
	if !ok {
		return nil, errors.New("missing 'config' entry in oath tfa entry")
	}
	if len(rawCfg) == 0 || rawCfg[0] != '{' {
		return nil, errors.New("bad 'config' entry in oath tfa entry")
	}
	cfgFields, err := objectFields(rawCfg)
	if err != nil {
		return nil, errors.New("bad 'config' entry in oath tfa entry")
	}
	tmpl := TOTP{Digits: 6, Algorithm: SHA1, Period: 30, Account: user}
	for _, f := range cfgFields {
		switch f.Name {
		case "step":
			n, ok := uintFromPerl(f.Value)
			if !ok || n == 0 {
				return nil, errors.New("bad 'step' value in oath config")
			}
			tmpl.Period = n
		case "digits":
			n, ok := uintFromPerl(f.Value)
			if !ok || n > 255 {
				return nil, errors.New("bad 'digits' value in oath config")
			}
			tmpl.Digits = uint8(n)
		default:
			return nil, errors.New("unhandled totp config keys in oath entry")
		}
	}
	keys, err := takeLegacyString(obj, "keys", "oath")
	if err != nil {
		return nil, err
	}
	var out []TOTP
	for _, key := range splitLegacyKeys(keys) {
		secret, err := decodeLegacySecret(key)
		if err != nil {
			return nil, err
		}
		if len(secret) == 0 {
			// PVE would store an empty secret it cannot read back.
			return nil, errors.New("empty key in oath entry")
		}
		t := tmpl
		t.Secret = secret
		out = append(out, t)
	}
	return out, nil
}

// decodeLegacySecret follows PVE::OTP::oath_verify_otp's key forms:
// "v2-0x<hex>", "v2-<base32>", 16 base32 characters or 40 hex digits.
func decodeLegacySecret(key string) ([]byte, error) {
	if h, ok := strings.CutPrefix(key, "v2-0x"); ok {
		b, err := hex.DecodeString(h)
		if err != nil {
			return nil, errors.New("bad v2 hex key in oath entry")
		}
		return b, nil
	}
	if s, ok := strings.CutPrefix(key, "v2-"); ok {
		b, ok := base32Decode(s)
		if !ok {
			return nil, errors.New("bad v2 base32 key in oath entry")
		}
		return b, nil
	}
	switch len(key) {
	case 16:
		b, ok := base32Decode(key)
		if !ok {
			return nil, errors.New("bad v1 base32 key in oath entry")
		}
		return b, nil
	case 40:
		b, err := hex.DecodeString(key)
		if err != nil {
			return nil, errors.New("bad v1 hex key in oath entry")
		}
		return b, nil
	}
	return nil, errors.New("unrecognized key format, must be hex or base32 encoded")
}

// uintFromPerl reads a non-negative integer that Perl may have written as
// a number or as a string.
func uintFromPerl(v json.RawMessage) (uint64, bool) {
	if len(v) > 0 && v[0] == '"' {
		s, err := decodeString(v)
		if err != nil {
			return 0, false
		}
		n, err := parseRustUint(s, 64)
		return n, err == nil
	}
	_, n, err := decodeInt(v, 64, false)
	return n, err == nil
}

// splitLegacyKeys splits on ',', ';' and ' ', trims ASCII white space and
// drops empty items.
func splitLegacyKeys(s string) []string {
	var out []string
	for _, k := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		if k = string(trimASCIISpace([]byte(k))); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// trimASCIISpace trims Rust's ASCII white space (space, \t, \n, \f, \r).
func trimASCIISpace(b []byte) []byte {
	return bytes.Trim(b, " \t\n\f\r")
}

// decodeBase64Indifferent decodes with optional padding (the base64
// crate's Indifferent mode, trailing bits must be zero).
func decodeBase64Indifferent(s string, raw *base64.Encoding) ([]byte, error) {
	trimmed := strings.TrimRight(s, "=")
	pad := len(s) - len(trimmed)
	if pad > 0 && (pad > 2 || len(trimmed)%4 == 0 || len(trimmed)%4+pad > 4) {
		return nil, errors.New("invalid padding")
	}
	return decodeBase64Strict(trimmed, raw)
}

// decodeBase64Strict decodes unpadded base64, refusing the line breaks
// encoding/base64 would skip.
func decodeBase64Strict(s string, raw *base64.Encoding) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("invalid byte in base64 data")
	}
	return raw.Strict().DecodeString(s)
}
