package access

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/pvenode/pvenode/pkg/ticket"
)

// TokenCfgFile is the name of the API token secret file under the config
// root (readable by root only).
const TokenCfgFile = "priv/token.cfg"

// ErrBadTokenSecret is returned when an API token's secret does not match.
var ErrBadTokenSecret = errors.New("invalid token value")

// TokenSecrets is priv/token.cfg: token secrets by full token id.
type TokenSecrets map[string]string

// ParseTokenCfg parses token.cfg lines "<tokenid> <secret>" (one space);
// blank lines are ignored, other malformed lines skipped with a warning.
func ParseTokenCfg(name string, data []byte) (TokenSecrets, []Warning) {
	s := TokenSecrets{}
	var warns []Warning
	for n, line := range strings.Split(string(data), "\n") {
		if trimSpace(line) == "" {
			continue
		}
		id, secret, ok := strings.Cut(line, " ")
		if !ok || id == "" || secret == "" || strings.ContainsAny(id, " \t\r\v\f") ||
			strings.ContainsAny(secret, " \t\r\v\f") || !ticket.IsTokenID(id) {
			warns = append(warns, Warning{File: name, Line: n + 1, Msg: "ignoring invalid token entry"})
			continue
		}
		s[id] = secret
	}
	return s, warns
}

// Marshal renders the file, one "<tokenid> <secret>" line per token, sorted
// by token id.
func (s TokenSecrets) Marshal() []byte {
	var b strings.Builder
	for _, id := range sortedKeys(s) {
		fmt.Fprintf(&b, "%s %s\n", id, s[id])
	}
	return []byte(b.String())
}

// VerifyTokenSecret checks a token secret against the raw content of
// token.cfg the way pmxcfs does: the line "<tokenid> <secret>" must occur
// exactly as a whole line. Every line is compared in constant time. A
// malformed token id never matches.
func VerifyTokenSecret(data []byte, tokenID, secret string) error {
	want := []byte(tokenID + " " + secret)
	if !ticket.IsTokenID(tokenID) || secret == "" || bytes.ContainsAny(want, "\n\x00") {
		return ErrBadTokenSecret
	}
	found := 0
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		found |= subtle.ConstantTimeCompare(line, want)
	}
	if found != 1 {
		return ErrBadTokenSecret
	}
	return nil
}
