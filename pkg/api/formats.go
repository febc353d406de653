package api

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/pvenode/pvenode/pkg/access"
	"github.com/pvenode/pvenode/pkg/calendar"
)

// formats are the string formats whose checks are implemented, with the
// messages PVE's format checks die with. An immutable table.
var formats = map[string]func(string) error{
	"string":         func(string) error { return nil },
	"pve-node":       reFormat(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`, "value does not look like a valid node name"),
	"pve-vmid":       reFormat(`^[1-9][0-9]{2,8}$`, "value does not look like a valid VM ID"),
	"pve-configid":   reFormatf(`^[a-zA-Z][a-zA-Z0-9_]+$`, "invalid configuration ID '%s'"),
	"pve-storage-id": reFormatf(`^[a-zA-Z][a-zA-Z0-9_.-]*[a-zA-Z0-9]$`, "storage ID '%s' contains illegal characters"),
	"pve-realm":      reFormatf(`^[A-Za-z][A-Za-z0-9._-]+$`, "realm name '%s' contains illegal characters"),
	"pve-userid":     checkUserID,
	"pve-tokenid":    checkTokenID,
	"pve-priv":       checkPrivilege,
	"pve-poolid":     reFormatf(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$`, "pool name '%s' contains invalid characters"),
	"pve-groupid":    reFormatf(`^[A-Za-z0-9_.-]+$`, "group name '%s' contains invalid characters"),
	"pve-roleid":     reFormatf(`^[A-Za-z0-9_.-]+$`, "role name '%s' contains invalid characters"),
	// backup jobs (jobs.cfg, vzdump)
	"pve-day-of-week": reFormatf(`^(mon|tue|wed|thu|fri|sat|sun)$`, "invalid day '%s'"),
	// realm configuration (domains.cfg)
	"address":            access.CheckAddress,
	"ldap-simple-attr":   access.CheckLDAPSimpleAttr,
	"pve-tfa-config":     func(s string) error { _, err := access.ParseRealmTFA(s); return err },
	"realm-sync-options": func(s string) error { _, err := access.ParseSyncOptions(s); return err },
	"ip": func(s string) error {
		if _, err := netip.ParseAddr(s); err != nil {
			return errors.New("value does not look like a valid IP address")
		}
		return nil
	},
}

func reFormat(pattern, msg string) func(string) error {
	re := regexp.MustCompile(pattern)
	return func(s string) error {
		if !re.MatchString(s) {
			return errors.New(msg)
		}
		return nil
	}
}

// reFormatf is reFormat with the value in the message (msgf has one %s).
func reFormatf(pattern, msgf string) func(string) error {
	re := regexp.MustCompile(pattern)
	return func(s string) error {
		if !re.MatchString(s) {
			return fmt.Errorf(msgf, s)
		}
		return nil
	}
}

var tokenNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]+$`)

var userIDRe = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9._-]+$`)

// checkPrivilege is PVE's "pve-priv": a known privilege name.
func checkPrivilege(s string) error {
	if !access.ValidPrivilege(s) {
		return fmt.Errorf("invalid privilege '%s'", s)
	}
	return nil
}

func checkUserID(s string) error {
	if len(s) < 3 || len(s) > 64 || !userIDRe.MatchString(s) {
		return fmt.Errorf("value '%s' does not look like a valid user name", s)
	}
	return nil
}

func checkTokenID(s string) error {
	user, name, ok := strings.Cut(s, "!")
	if !ok || checkUserID(user) != nil || !tokenNameRe.MatchString(name) {
		return fmt.Errorf("value '%s' does not look like a valid token ID", s)
	}
	return nil
}

// isListFormat reports whether f is a "<name>-list" format.
func isListFormat(f any) bool {
	s, ok := f.(string)
	return ok && strings.HasSuffix(s, "-list")
}

// checkFormat validates s against a named format; list formats check each
// element. Property-string formats (maps) and formats without an
// implemented check are accepted here and must be checked by the handler;
// UncheckedFormats lists them for the conformance report.
func checkFormat(f any, s string) error {
	name, ok := f.(string)
	if !ok {
		return nil
	}
	if base, isList := strings.CutSuffix(name, "-list"); isList {
		fn, ok := lookupFormat(base)
		if !ok {
			return nil
		}
		for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == 0 }) {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	fn, ok := lookupFormat(name)
	if !ok {
		return nil
	}
	return fn(s)
}

// lookupFormat returns the check of a named format. The property-string
// formats are resolved here rather than in the formats table, whose
// initialisation cannot refer to the parser that uses the table.
func lookupFormat(name string) (func(string) error, bool) {
	switch name {
	case "prune-backups":
		return checkPruneBackups, true
	case "backup-fleecing":
		return checkPropertyFormat(BackupFleecingFormat), true
	case "backup-performance":
		return checkPropertyFormat(BackupPerformanceFormat), true
	case "pve-calendar-event":
		return checkCalendarEvent, true
	}
	fn, ok := formats[name]
	return fn, ok
}

// checkCalendarEvent is PVE's pve-calendar-event format.
func checkCalendarEvent(s string) error {
	_, err := calendar.Parse(s)
	return err
}
