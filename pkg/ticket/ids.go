package ticket

import (
	"fmt"
	"strings"
)

// ParseUserID splits a user id "USER@REALM" into its parts. USER is one or
// more bytes other than whitespace, ':' and '/' (it may contain '@'; the
// realm starts after the last '@'), REALM is a letter followed by one or
// more of A-Z a-z 0-9 . _ -, and the whole id is 3 to 64 bytes long.
func ParseUserID(id string) (user, realm string, err error) {
	if len(id) < 3 {
		return "", "", fmt.Errorf("user id %q is too short", id)
	}
	if len(id) > 64 {
		return "", "", fmt.Errorf("user id %q is too long (%d > 64)", id, len(id))
	}
	user, realm, ok := splitUserID(id)
	if !ok {
		return "", "", fmt.Errorf("value %q does not look like a valid user id", id)
	}
	return user, realm, nil
}

// ParseTokenID splits an API token id "USER@REALM!NAME" into the owning
// user id and the token name. NAME follows the realm grammar. As in PVE, the
// length of the user id is not limited here.
func ParseTokenID(id string) (userID, name string, err error) {
	i := strings.LastIndexByte(id, '!')
	if i < 0 {
		return "", "", fmt.Errorf("value %q does not look like a valid token id", id)
	}
	userID, name = id[:i], id[i+1:]
	if _, _, ok := splitUserID(userID); !ok || !validRealm(name) {
		return "", "", fmt.Errorf("value %q does not look like a valid token id", id)
	}
	return userID, name, nil
}

// IsTokenID reports whether id is a well-formed API token id.
func IsTokenID(id string) bool {
	_, _, err := ParseTokenID(id)
	return err == nil
}

// splitUserID applies the USER@REALM grammar without the length limits.
func splitUserID(id string) (user, realm string, ok bool) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 {
		return "", "", false
	}
	user, realm = id[:i], id[i+1:]
	for j := 0; j < len(user); j++ {
		c := user[j]
		if isSpace(c) || c == ':' || c == '/' {
			return "", "", false
		}
	}
	if !validRealm(realm) {
		return "", "", false
	}
	return user, realm, true
}

// validRealm checks [A-Za-z][A-Za-z0-9._-]+ (at least two bytes), the
// grammar of realm names and of API token names.
func validRealm(s string) bool {
	if len(s) < 2 || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidRealm reports whether s is a well-formed realm name.
func ValidRealm(s string) bool { return validRealm(s) }

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }
