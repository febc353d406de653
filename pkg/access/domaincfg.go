package access

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/pvetext"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// DomainsCfg is domains.cfg as the realm API reads and writes it: PVE's
// section config of realm plugins (pam, pve, ldap, ad, openid).
type DomainsCfg struct {
	// Realms by realm id. The pam and pve realms are always present.
	Realms map[string]*RealmConfig
	// Order lists the realm ids in file order; Marshal writes in this
	// order, so new realms are appended.
	Order []string
	// Digest is the SHA-1 (hex) of the file as read.
	Digest string
}

// RealmConfig is one section of domains.cfg. Props holds the options as
// text: booleans "0"/"1", integers in decimal, the comment decoded.
type RealmConfig struct {
	Type  string
	Props map[string]string
}

// RealmOption is how a realm type uses an option.
type RealmOption struct {
	Required bool
	Fixed    bool // cannot change after creation
}

// PropKind is the JSON type of a realm property.
type PropKind int

// Kinds of realm properties.
const (
	PropString PropKind = iota
	PropBool
	PropInt
)

// realmProp is the schema of one realm property (PVE keeps one property
// list for all realm types; each type picks its options from it).
type realmProp struct {
	kind    PropKind
	maxLen  int
	pattern *regexp.Regexp
	enum    []string
	min     *int64
	max     *int64
	format  func(string) error
}

func i64(v int64) *int64 { return &v }

var (
	uriSafeRe = regexp.MustCompile(`^[^\x00-\x1F\x7F <>#"]*$`)

	realmProps = map[string]realmProp{
		"acr-values":            {pattern: uriSafeRe},
		"audiences":             {pattern: uriSafeRe},
		"autocreate":            {kind: PropBool},
		"base_dn":               {maxLen: 256},
		"bind_dn":               {maxLen: 256},
		"capath":                {},
		"case-sensitive":        {kind: PropBool},
		"cert":                  {},
		"certkey":               {},
		"client-id":             {maxLen: 256},
		"client-key":            {maxLen: 256},
		"comment":               {maxLen: 4096},
		"default":               {kind: PropBool},
		"domain":                {pattern: regexp.MustCompile(`^(?:[^\t\n\v\f\r ]+)$`), maxLen: 256},
		"filter":                {maxLen: 2048},
		"group_classes":         {format: CheckLDAPSimpleAttrList},
		"group_dn":              {maxLen: 256},
		"group_filter":          {maxLen: 2048},
		"group_name_attr":       {format: CheckLDAPSimpleAttr, maxLen: 256},
		"groups-autocreate":     {kind: PropBool},
		"groups-claim":          {pattern: regexp.MustCompile(`^(?:[A-Za-z0-9.\-_]+)$`), maxLen: 256},
		"groups-overwrite":      {kind: PropBool},
		"issuer-url":            {maxLen: 256},
		"mode":                  {enum: []string{"ldap", "ldaps", "ldap+starttls"}},
		"password":              {},
		"port":                  {kind: PropInt, min: i64(1), max: i64(65535)},
		"prompt":                {pattern: regexp.MustCompile(`^(?:none|login|consent|select_account|[^\t\n\v\f\r ]+)$`)},
		"query-userinfo":        {kind: PropBool},
		"scopes":                {},
		"secure":                {kind: PropBool},
		"server1":               {format: CheckAddress, maxLen: 256},
		"server2":               {format: CheckAddress, maxLen: 256},
		"sslversion":            {enum: []string{"tlsv1", "tlsv1_1", "tlsv1_2", "tlsv1_3"}},
		"sync-defaults-options": {format: func(s string) error { _, err := ParseSyncOptions(s); return err }},
		"sync_attributes":       {pattern: regexp.MustCompile(`^(?:\w+=[^,]+(,[\t\n\v\f\r ]*\w+=[^,]+)*)$`)},
		"tfa":                   {format: func(s string) error { _, err := ParseRealmTFA(s); return err }, maxLen: 128},
		"user_attr":             {pattern: regexp.MustCompile(`^(?:[^\t\n\v\f\r ]{2,})$`), maxLen: 256},
		"user_classes":          {format: CheckLDAPSimpleAttrList},
		"username-claim":        {},
		"verify":                {kind: PropBool},
	}

	ldapSyncOptions = []string{"verify", "capath", "cert", "certkey", "filter", "sync_attributes",
		"user_classes", "group_dn", "group_name_attr", "group_filter", "group_classes",
		"sync-defaults-options", "mode", "case-sensitive", "server2", "bind_dn", "password", "port",
		"secure", "sslversion", "default", "comment", "tfa"}

	// realmTypeOpts are the options of each realm type (PVE's Auth plugins).
	realmTypeOpts = map[string]map[string]RealmOption{
		"pam":  realmOpts(nil, []string{"default", "comment", "tfa"}, nil),
		"pve":  realmOpts(nil, []string{"default", "comment", "tfa"}, nil),
		"ldap": realmOpts([]string{"server1", "base_dn", "user_attr"}, ldapSyncOptions, nil),
		"ad":   realmOpts([]string{"server1", "domain"}, append([]string{"base_dn", "user_attr"}, ldapSyncOptions...), nil),
		"openid": realmOpts([]string{"issuer-url", "client-id"}, []string{"client-key", "autocreate",
			"groups-claim", "groups-autocreate", "groups-overwrite", "prompt", "scopes", "acr-values",
			"audiences", "default", "comment", "query-userinfo"}, []string{"username-claim"}),
	}
)

func realmOpts(required, optional, fixed []string) map[string]RealmOption {
	m := map[string]RealmOption{}
	for _, k := range required {
		m[k] = RealmOption{Required: true}
	}
	for _, k := range optional {
		m[k] = RealmOption{}
	}
	for _, k := range fixed {
		m[k] = RealmOption{Fixed: true}
	}
	return m
}

// RealmTypeOptions returns the options of a realm type, or nil for an
// unknown type. The map is shared: do not modify it.
func RealmTypeOptions(typ string) map[string]RealmOption { return realmTypeOpts[typ] }

// RealmPropKind returns the JSON type of a realm property.
func RealmPropKind(name string) PropKind { return realmProps[name].kind }

// CheckAddress is PVE's "address" format: an IP address or a DNS name.
func CheckAddress(s string) error {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return nil
	}
	if dnsNameRe.MatchString(s) {
		return nil
	}
	return fmt.Errorf("value does not look like a valid address: %s", s)
}

var (
	dnsNameRe        = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$`)
	ldapSimpleAttrRe = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	realmIDRe        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]+$`)
	// Perl's \s, unlike Go's, includes \v: spelt out.
	bodyLineRe    = regexp.MustCompile(`^[\t\n\v\f\r ]+([^\t\n\v\f\r ]+)(?:[\t\n\v\f\r ]+(.*[^\t\n\v\f\r ]))?[\t\n\v\f\r ]*$`)
	headerLineRe  = regexp.MustCompile(`^([^\t\n\v\f\r ]+):[\t\n\v\f\r ]*([^\t\n\v\f\r ]+)[\t\n\v\f\r ]*$`)
	commentLineRe = regexp.MustCompile(`^[\t\n\v\f\r ]*#`)
)

// CheckLDAPSimpleAttr is PVE's "ldap-simple-attr" format.
func CheckLDAPSimpleAttr(s string) error {
	if !ldapSimpleAttrRe.MatchString(s) {
		return fmt.Errorf("value '%s' does not look like a simple ldap attribute name", s)
	}
	return nil
}

// CheckLDAPSimpleAttrList is "ldap-simple-attr-list".
func CheckLDAPSimpleAttrList(s string) error {
	for _, a := range SplitList(s) {
		if err := CheckLDAPSimpleAttr(a); err != nil {
			return err
		}
	}
	return nil
}

// ValidRealmID reports whether s is a valid realm id.
func ValidRealmID(s string) bool { return realmIDRe.MatchString(s) }

// checkRealmValue is SectionConfig's check_value with the schema check:
// it returns the value normalised (booleans and integers as numbers).
func checkRealmValue(key, value string) (string, error) {
	p, ok := realmProps[key]
	if !ok {
		return "", errors.New("unknown property type")
	}
	if strings.ContainsAny(value, "\r\n") {
		return "", errors.New("property contains a line feed")
	}
	switch p.kind {
	case PropBool:
		if value != "0" && value != "1" {
			return "", fmt.Errorf("type check ('boolean') failed - got '%s'", value)
		}
		return value, nil
	case PropInt:
		n, err := parsePerlInt(value)
		if err != nil {
			return "", fmt.Errorf("type check ('integer') failed - got '%s'", value)
		}
		if p.max != nil && n > *p.max {
			return "", fmt.Errorf("value must have a maximum value of %d", *p.max)
		}
		if p.min != nil && n < *p.min {
			return "", fmt.Errorf("value must have a minimum value of %d", *p.min)
		}
		return strconv.FormatInt(n, 10), nil
	}
	if p.format != nil {
		if err := p.format(value); err != nil {
			return "", fmt.Errorf("invalid format - %w", err)
		}
	}
	if p.pattern != nil && !p.pattern.MatchString(value) {
		return "", errors.New("value does not match the regex pattern")
	}
	if p.maxLen > 0 && len(value) > p.maxLen {
		return "", fmt.Errorf("value may only be %d characters long", p.maxLen)
	}
	if p.enum != nil && !contains(p.enum, value) {
		return "", fmt.Errorf("value '%s' does not have a value in the enumeration '%s'", value, strings.Join(p.enum, ", "))
	}
	return value, nil
}

var perlIntRe = regexp.MustCompile(`^[+-]?\d+$`)

func parsePerlInt(s string) (int64, error) {
	if !perlIntRe.MatchString(s) {
		return 0, errors.New("not an integer")
	}
	return strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// ParseDomainsCfg parses domains.cfg as PVE does: comment lines are
// skipped; a section starts with "<type>: <realm>" and ends at an empty
// line (or one reading "0"); sections of unknown type or with an invalid realm id are skipped,
// as are options the type does not have, values failing their schema and
// sections lacking a required option; a repeated realm id replaces the
// earlier section. Only the first realm marked default keeps the mark. The
// pam and pve realms are added when missing (appended in that order), with
// PVE's default comments. Each skipped item is reported.
func ParseDomainsCfg(name string, data []byte) (*DomainsCfg, []Warning) {
	sum := sha1.Sum(data)
	c := &DomainsCfg{Realms: map[string]*RealmConfig{}, Digest: hex.EncodeToString(sum[:])}
	var warns []Warning
	lines := strings.Split(string(data), "\n")
	n := 0
	next := func() (string, bool) {
		for n < len(lines) {
			l := lines[n]
			n++
			if !commentLineRe.MatchString(l) {
				return l, true
			}
		}
		return "", false
	}
	warn := func(format string, args ...any) {
		warns = append(warns, Warning{File: name, Line: n, Msg: fmt.Sprintf(format, args...)})
	}
	for n < len(lines) {
		line, ok := next()
		if !ok || !perlTrue(line) {
			continue
		}
		m := headerLineRe.FindStringSubmatch(line)
		if m == nil {
			warn("ignore config line: %s", line)
			continue
		}
		typ, id := strings.ToLower(m[1]), m[2]
		skip := false
		opts := realmTypeOpts[typ]
		switch {
		case !realmIDRe.MatchString(id):
			warn("skip section '%s': value does not look like a valid realm", id)
			skip = true
		case opts == nil:
			warn("skip section '%s': unsupported type '%s'", id, typ)
			skip = true
		}
		props := map[string]string{}
		for {
			line, ok := next()
			if !ok || !perlTrue(line) {
				break // an empty line (or "0") ends the section
			}
			if skip {
				continue
			}
			bm := bodyLineRe.FindStringSubmatch(line)
			if bm == nil {
				warn("section '%s' - ignore config line: %s", id, line)
				continue
			}
			k, v := bm[1], bm[2]
			if err := func() error {
				if _, dup := props[k]; dup {
					return errors.New("duplicate attribute")
				}
				if k == "type" && v == typ {
					return nil
				}
				if _, ok := opts[k]; !ok {
					return fmt.Errorf("unexpected property '%s'", k)
				}
				if v == "" {
					if realmProps[k].kind != PropBool {
						return errors.New("got undefined value")
					}
					v = "1"
				}
				val, err := checkRealmValue(k, v)
				if err != nil {
					return err
				}
				props[k] = val
				return nil
			}(); err != nil {
				warn("section '%s' - unable to parse value of '%s': %v", id, k, err)
			}
		}
		if skip {
			continue
		}
		if missing := missingRequired(opts, props); missing != "" {
			warn("skip section '%s': missing value for required option '%s'", id, missing)
			continue
		}
		if _, dup := c.Realms[id]; dup {
			c.Order = removeString(c.Order, id)
		}
		c.Realms[id] = &RealmConfig{Type: typ, Props: props}
		c.Order = append(c.Order, id)
	}
	seenDefault := false
	for _, id := range c.Order {
		r := c.Realms[id]
		if perlTrue(r.Props["default"]) {
			if seenDefault {
				delete(r.Props, "default")
			}
			seenDefault = true
		}
		if s, ok := r.Props["comment"]; ok && perlTrue(s) {
			r.Props["comment"] = pvetext.Decode(s)
		}
	}
	for _, f := range []struct{ id, comment string }{
		{"pam", "Linux PAM standard authentication"},
		{"pve", "Proxmox VE authentication server"},
	} {
		r := c.Realms[f.id]
		if r == nil {
			r = &RealmConfig{Props: map[string]string{}}
			c.Realms[f.id] = r
			c.Order = append(c.Order, f.id)
		}
		r.Type = f.id
		if !perlTrue(r.Props["comment"]) {
			r.Props["comment"] = f.comment
		}
	}
	c.Realms["pam"].Props["plugin"] = "PVE::Auth::PAM"
	return c, warns
}

func missingRequired(opts map[string]RealmOption, props map[string]string) string {
	for _, k := range sortedKeys(opts) {
		if _, ok := props[k]; opts[k].Required && !ok {
			return k
		}
	}
	return ""
}

func removeString(l []string, s string) []string {
	out := l[:0]
	for _, v := range l {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// Marshal renders the file as PVE writes it: per realm in Order a
// "<type>: <realm>" line, the comment (encoded) first when set, then the
// required options sorted, then the other options sorted, each as
// "\t<key> <value>", and an empty line. Options the type does not have
// are not written, nor are empty values. A realm missing a required option
// is an error.
func (c *DomainsCfg) Marshal() ([]byte, error) {
	var b strings.Builder
	for _, id := range c.Order {
		r := c.Realms[id]
		if r == nil {
			continue
		}
		opts := realmTypeOpts[r.Type]
		if opts == nil {
			return nil, fmt.Errorf("unknown section type '%s'", r.Type)
		}
		fmt.Fprintf(&b, "%s: %s\n", r.Type, id)
		line := func(k, v string) error {
			if strings.ContainsAny(k+v, "\r\n") {
				return fmt.Errorf("property '%s' contains a line feed", k)
			}
			if v != "" {
				fmt.Fprintf(&b, "\t%s %s\n", k, v)
			}
			return nil
		}
		if s := r.Props["comment"]; perlTrue(s) {
			if err := line("comment", pvetext.Encode(s)); err != nil {
				return nil, err
			}
		}
		keys := sortedKeys(opts)
		for _, k := range keys {
			if k == "comment" || !opts[k].Required {
				continue
			}
			v, ok := r.Props[k]
			if !ok {
				return nil, fmt.Errorf("section '%s' - missing value for required option '%s'", id, k)
			}
			if err := line(k, v); err != nil {
				return nil, err
			}
		}
		for _, k := range keys {
			if v, ok := r.Props[k]; ok && k != "comment" && !opts[k].Required {
				if err := line(k, v); err != nil {
					return nil, err
				}
			}
		}
		b.WriteString("\n")
	}
	return []byte(b.String()), nil
}

// CheckRealmConfig is SectionConfig's check_config without the schema
// check (the API has validated the values): every key must be an option
// of typ, fixed options cannot change on update and, on create, every
// required option must be given. Booleans and integers come back
// normalised; a "type" key equal to typ is accepted and dropped.
func CheckRealmConfig(typ string, params map[string]string, create bool) (map[string]string, error) {
	opts := realmTypeOpts[typ]
	if opts == nil {
		return nil, fmt.Errorf("unknown section type '%s'", typ)
	}
	out := map[string]string{}
	for _, k := range sortedKeys(params) {
		v := params[k]
		if !create && opts[k].Fixed {
			return nil, fmt.Errorf("can't change value of fixed parameter '%s'", k)
		}
		if k == "type" && v == typ {
			continue
		}
		if _, ok := opts[k]; !ok {
			return nil, fmt.Errorf("unexpected property '%s'", k)
		}
		switch realmProps[k].kind {
		case PropInt:
			if n, err := parsePerlInt(v); err == nil {
				v = strconv.FormatInt(n, 10)
			}
		case PropBool:
			if v != "0" {
				v = "1"
			}
		}
		if strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("property contains a line feed")
		}
		out[k] = v
	}
	if create {
		if k := missingRequired(opts, out); k != "" {
			return nil, fmt.Errorf("missing value for required option '%s'", k)
		}
	}
	return out, nil
}

// psKey is the schema of one key of a property string.
type psKey struct {
	kind     PropKind
	required bool
	enum     []string
	pattern  *regexp.Regexp
	min, max *int64
}

var (
	tfaFormat = map[string]psKey{
		"type":   {required: true, enum: []string{"yubico", "oath"}},
		"id":     {},
		"key":    {},
		"url":    {},
		"digits": {kind: PropInt, min: i64(6), max: i64(8)},
		"step":   {kind: PropInt, min: i64(10)},
	}
	syncFormat = map[string]psKey{
		"scope":           {enum: []string{"users", "groups", "both"}},
		"remove-vanished": {pattern: regexp.MustCompile(`^(?:(?:(?:acl|properties|entry);)*(?:acl|properties|entry)|none)$`)},
		"full":            {kind: PropBool},
		"enable-new":      {kind: PropBool},
		"purge":           {kind: PropBool},
	}
	psPairRe = regexp.MustCompile(`^([^=]+)=(.+)$`)
)

// ParseRealmTFA parses a realm's "tfa" property string (PVE's
// pve-tfa-config format).
func ParseRealmTFA(s string) (map[string]string, error) { return parsePropertyString(tfaFormat, s) }

// ParseSyncOptions parses a "sync-defaults-options" property string (PVE's
// realm-sync-options format).
func ParseSyncOptions(s string) (map[string]string, error) { return parsePropertyString(syncFormat, s) }

// parsePropertyString is PVE's parse_property_string for formats without a
// default key, with its messages; schema errors come as "format error"
// followed by one "<key>: <message>" line per key.
func parsePropertyString(format map[string]psKey, s string) (map[string]string, error) {
	res := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		m := psPairRe.FindStringSubmatch(part)
		if m == nil {
			if !strings.Contains(part, "=") {
				return nil, errors.New("value without key, but schema does not define a default key")
			}
			return nil, errors.New("missing key in comma-separated list property")
		}
		k, v := m[1], m[2]
		if _, dup := res[k]; dup {
			return nil, fmt.Errorf("duplicate key in comma-separated list property: %s", k)
		}
		sch, ok := format[k]
		if !ok {
			return nil, fmt.Errorf("invalid key in comma-separated list property: %s", k)
		}
		if sch.kind == PropBool {
			switch strings.ToLower(v) {
			case "1", "on", "yes", "true":
				v = "1"
			case "0", "off", "no", "false":
				v = "0"
			}
		}
		res[k] = v
	}
	errs := map[string]string{}
	for _, k := range sortedKeys(format) {
		sch := format[k]
		v, ok := res[k]
		if !ok {
			if sch.required {
				errs[k] = "property is missing and it is not optional"
			}
			continue
		}
		if msg := sch.check(v); msg != "" {
			errs[k] = msg
		}
	}
	if len(errs) > 0 {
		var b strings.Builder
		b.WriteString("format error")
		for _, k := range sortedKeys(errs) {
			fmt.Fprintf(&b, "\n%s: %s", k, errs[k])
		}
		return nil, errors.New(b.String())
	}
	return res, nil
}

func (k psKey) check(v string) string {
	switch k.kind {
	case PropBool:
		if v != "0" && v != "1" {
			return fmt.Sprintf("type check ('boolean') failed - got '%s'", v)
		}
	case PropInt:
		if !perlIntRe.MatchString(v) {
			return fmt.Sprintf("type check ('integer') failed - got '%s'", v)
		}
	}
	if k.pattern != nil && !k.pattern.MatchString(v) {
		return "value does not match the regex pattern"
	}
	if n, err := parsePerlInt(v); err == nil {
		if k.max != nil && n > *k.max {
			return fmt.Sprintf("value must have a maximum value of %d", *k.max)
		}
		if k.min != nil && n < *k.min {
			return fmt.Sprintf("value must have a minimum value of %d", *k.min)
		}
	}
	if k.enum != nil && !contains(k.enum, v) {
		return fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(k.enum, ", "))
	}
	return ""
}

// printPropertyString is PVE's print_property_string for formats without
// a default key: required keys first, then the rest, each sorted.
func printPropertyString(format map[string]psKey, data map[string]string) (string, error) {
	var parts []string
	keys := sortedKeys(data)
	for _, pass := range []bool{true, false} {
		for _, k := range keys {
			sch, ok := format[k]
			if !ok {
				return "", fmt.Errorf("invalid key '%s'", k)
			}
			if sch.required != pass {
				continue
			}
			if strings.Contains(data[k], ",") {
				return "", fmt.Errorf("illegal value with commas for %s", k)
			}
			parts = append(parts, k+"="+data[k])
		}
	}
	return strings.Join(parts, ","), nil
}

// MapSyncDefaults rewrites a sync-defaults-options value as PVE's realm
// API does: the deprecated full/purge flags become "remove-vanished"
// (entry;properties for full, acl for purge) unless it is set; with
// dropDeprecated, full and purge are removed. Values that do not parse
// are an error.
func MapSyncDefaults(s string, dropDeprecated bool) (string, error) {
	opt, err := ParseSyncOptions(s)
	if err != nil {
		return "", err
	}
	if _, ok := opt["remove-vanished"]; !ok && (perlTrue(opt["full"]) || perlTrue(opt["purge"])) {
		var props []string
		if perlTrue(opt["full"]) {
			props = append(props, "entry", "properties")
		}
		if perlTrue(opt["purge"]) {
			props = append(props, "acl")
		}
		opt["remove-vanished"] = strings.Join(props, ";")
	}
	if dropDeprecated {
		delete(opt, "full")
		delete(opt, "purge")
	}
	return printPropertyString(syncFormat, opt)
}

// RealmPasswordFile is where an LDAP or AD realm's bind password is kept,
// and legacyRealmPasswordFile where PVE 6 kept it.
func RealmPasswordFile(realm string) string       { return "priv/realm/" + realm + ".pw" }
func legacyRealmPasswordFile(realm string) string { return "priv/ldap/" + realm + ".pw" }

// SetRealmPassword stores an LDAP/AD bind password (PVE's
// ldap_set_credentials).
func SetRealmPassword(root *pvefs.Root, realm, password string) error {
	if err := root.MkdirAll("priv/realm", 0o700); err != nil {
		return err
	}
	return root.WriteFile(RealmPasswordFile(realm), []byte(password), 0o600)
}

// DeleteRealmPassword removes an LDAP/AD bind password, or the legacy file
// when only that exists (PVE's ldap_delete_credentials).
func DeleteRealmPassword(root *pvefs.Root, realm string) error {
	name := RealmPasswordFile(realm)
	if _, err := root.Stat(name); err != nil {
		if _, err := root.Stat(legacyRealmPasswordFile(realm)); err == nil {
			name = legacyRealmPasswordFile(realm)
		}
	}
	return root.Remove(name)
}

// ErrRealmNotImplemented marks a realm type whose password checks this
// implementation cannot do (LDAP, AD).
var ErrRealmNotImplemented = errors.New("not implemented")

// CheckPassword verifies password for userid against its realm, as PVE's
// realm plugins do when a user confirms a change with its password:
// through PAM for the pam realm, priv/shadow.cfg for the pve realm. Unlike
// Login it does not look at the user's state, tickets or second factors.
// The errors carry PVE's messages; LDAP and AD realms answer an error
// wrapping ErrRealmNotImplemented.
func (a *Authenticator) CheckPassword(ctx context.Context, userid, password, clientIP string) error {
	ruid, realm, err := ticket.ParseUserID(userid)
	if err != nil {
		return err
	}
	domains, _, err := a.domains.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return err
	}
	r, ok := domains[realm]
	if !ok {
		return fmt.Errorf("auth domain '%s' does not exist", realm)
	}
	switch r.Type {
	case "pam":
		if password == "" {
			return errors.New("no password")
		}
		if err := a.deps.PAM(a.deps.PAMService, ruid, password, clientIP); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "pam: "))
		}
		return nil
	case "pve":
		if password == "" {
			return errors.New("no password")
		}
		data, err := a.deps.FS.ReadFileOrEmpty(ShadowFile)
		if err != nil {
			return err
		}
		shadow, _ := ParseShadow(ShadowFile, data)
		return shadow.VerifyPassword(ruid, password)
	case "openid":
		return errors.New("OpenID realm does not allow password verification.")
	}
	return fmt.Errorf("%w: password verification against %s realms", ErrRealmNotImplemented, r.Type)
}

// RealmIDs returns the realm ids, sorted.
func (c *DomainsCfg) RealmIDs() []string { return sortedKeys(c.Realms) }
