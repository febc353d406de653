package access

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"go4.org/netipx"

	"github.com/pvenode/pvenode/pkg/netacl"
	"github.com/pvenode/pvenode/pkg/pvefs"
	"github.com/pvenode/pvenode/pkg/ticket"
)

// TokenNetworksFile is the file under the config root that restricts API
// tokens to source networks. It is ours: PVE has no such setting and never
// reads it, and user.cfg stays exactly PVE's. Like user.cfg it is
// root:www-data 0640, because pveproxy enforces it too.
const TokenNetworksFile = "pvenode/token-networks.cfg"

// tokenNetworksHeader starts every file Marshal writes.
const tokenNetworksHeader = "# Allowed source networks of API tokens (pvenode; PVE does not read this file).\n" +
	"# <token id> <address list, as ALLOW_FROM in /etc/default/pveproxy>\n"

// ErrTokenNetwork marks a token refused because the client address is
// outside the token's allowed networks (or unknown). It comes wrapped in an
// *AuthError.
var ErrTokenNetwork = errors.New("client address not in the token's allowed networks")

// TokenNetworks are the allowed source networks of API tokens: by full
// token id ("admin@pve!ci"), an address list in the syntax of ALLOW_FROM
// (see pkg/netacl). A token without an entry may be used from anywhere.
type TokenNetworks map[string]string

// ParseTokenNetworks parses the file: one "<token id> <address list>" line
// per token, separated by blanks; blank lines and lines starting with '#'
// are ignored. Every problem is reported, as "<name>:<line>: ...": a bad
// token id, a duplicate token, a missing or invalid address list. The result
// holds the good lines even when there is an error.
func ParseTokenNetworks(name string, data []byte) (TokenNetworks, error) {
	t, _, err := parseTokenNetworks(name, data)
	return t, err
}

// parseTokenNetworks is ParseTokenNetworks that also returns the parsed
// address sets.
func parseTokenNetworks(name string, data []byte) (TokenNetworks, map[string]*netipx.IPSet, error) {
	t := TokenNetworks{}
	sets := map[string]*netipx.IPSet{}
	first := map[string]int{}
	var errs []error
	for n, raw := range strings.Split(string(data), "\n") {
		line := trimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, n+1, fmt.Sprintf(format, args...)))
		}
		id, list := line, ""
		if i := strings.IndexAny(line, " \t\v\f\r"); i >= 0 {
			id, list = line[:i], trimSpace(line[i+1:])
		}
		if !ticket.IsTokenID(id) {
			fail("invalid token id %q", id)
			continue
		}
		if l, dup := first[id]; dup {
			fail("second entry for token %s (first on line %d)", id, l)
			continue
		}
		first[id] = n + 1
		set, err := parseNetworkList(list)
		if err != nil {
			fail("token %s: %v", id, err)
			continue
		}
		t[id], sets[id] = list, set
	}
	return t, sets, errors.Join(errs...)
}

// parseNetworkList parses a non-empty address list.
func parseNetworkList(list string) (*netipx.IPSet, error) {
	if list == "" {
		return nil, errors.New("no address list")
	}
	return netacl.ParseList(list)
}

// ValidateNetworkList checks an address list for a token (the syntax of
// ALLOW_FROM; it must not be empty).
func ValidateNetworkList(list string) error {
	_, err := parseNetworkList(list)
	return err
}

// Set gives tokenID the address list; an empty list removes its entry.
func (t TokenNetworks) Set(tokenID, list string) error {
	if !ticket.IsTokenID(tokenID) {
		return fmt.Errorf("invalid token id %q", tokenID)
	}
	list = trimSpace(list)
	if list == "" {
		delete(t, tokenID)
		return nil
	}
	if err := ValidateNetworkList(list); err != nil {
		return err
	}
	t[tokenID] = list
	return nil
}

// Remove deletes the entry of a token id, or the entries of every token of
// a user id.
func (t TokenNetworks) Remove(id string) {
	for k := range t {
		if tokenNetworkOf(k, id) {
			delete(t, k)
		}
	}
}

// tokenNetworkOf reports whether the entry of tokenID belongs to id (the
// token itself, or its user).
func tokenNetworkOf(tokenID, id string) bool {
	return tokenID == id || strings.HasPrefix(tokenID, id+"!") && !strings.Contains(id, "!")
}

// Marshal renders the file: a header comment, then one line per token,
// sorted by token id.
func (t TokenNetworks) Marshal() []byte {
	var b strings.Builder
	b.WriteString(tokenNetworksHeader)
	for _, id := range sortedKeys(t) {
		b.WriteString(id)
		b.WriteByte(' ')
		b.WriteString(t[id])
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// UpdateTokenNetworks runs a read-modify-write of TokenNetworksFile under
// its lock: fn gets the parsed file and the result is written back (comments
// other than the header are not kept). A file with an error is not
// rewritten: the error is returned, since dropping a bad line would lift a
// restriction. Neither is a result with an invalid list. A new file is made
// root:<group of user.cfg> 0640 from the start, so pveproxy can always read
// it.
func UpdateTokenNetworks(ctx context.Context, root *pvefs.Root, fn func(TokenNetworks) error) error {
	if err := prepareTokenNetworksFile(root); err != nil {
		return err
	}
	return root.Update(ctx, TokenNetworksFile, 0o640, func(old []byte) ([]byte, error) {
		t, err := ParseTokenNetworks(TokenNetworksFile, old)
		if err != nil {
			return nil, fmt.Errorf("update %s: %w", TokenNetworksFile, err)
		}
		if err := fn(t); err != nil {
			return nil, err
		}
		data := t.Marshal()
		if _, err := ParseTokenNetworks(TokenNetworksFile, data); err != nil {
			return nil, fmt.Errorf("update %s: %w", TokenNetworksFile, err)
		}
		return data, nil
	})
}

// ClearTokenNetworks removes the entry of a token id, or the entries of all
// tokens of a user id, for the token's or user's deletion. It edits lines
// only, so it works on a file with errors elsewhere; a missing file is
// fine.
func ClearTokenNetworks(ctx context.Context, root *pvefs.Root, id string) error {
	if _, err := root.Stat(TokenNetworksFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return root.Update(ctx, TokenNetworksFile, 0o640, func(old []byte) ([]byte, error) {
		var b strings.Builder
		for line := range strings.SplitSeq(strings.TrimSuffix(string(old), "\n"), "\n") {
			f := trimSpace(line)
			if i := strings.IndexAny(f, " \t\v\f\r"); i >= 0 {
				f = f[:i]
			}
			if f != "" && f[0] != '#' && tokenNetworkOf(f, id) {
				continue
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		return []byte(b.String()), nil
	})
}

// prepareTokenNetworksFile creates the directory and, when the file does
// not exist, an empty file with user.cfg's group, which pvefs keeps when it
// replaces the file.
func prepareTokenNetworksFile(root *pvefs.Root) error {
	if err := root.MkdirAll("pvenode", 0o755); err != nil {
		return err
	}
	p, err := root.Path(TokenNetworksFile)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", TokenNetworksFile, err)
	}
	defer f.Close()
	if err := f.Chmod(0o640); err != nil {
		return fmt.Errorf("create %s: %w", TokenNetworksFile, err)
	}
	if fi, err := root.Stat(UserCfgFile); err == nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if err := f.Chown(0, int(st.Gid)); err != nil {
				return fmt.Errorf("create %s: %w", TokenNetworksFile, err)
			}
		}
	}
	return nil
}

// tokenNetSets are the parsed address sets of TokenNetworksFile.
type tokenNetSets map[string]*netipx.IPSet

// parseTokenNetSets is the cachedFile parser: a missing file restricts
// nothing; a file with any error is an error, and every token is refused
// until it is fixed (a bad line might be the restriction of any token).
func parseTokenNetSets(data []byte) (tokenNetSets, error) {
	if data == nil {
		return nil, nil
	}
	_, sets, err := parseTokenNetworks(TokenNetworksFile, data)
	if err != nil {
		return nil, err
	}
	return sets, nil
}

// checkTokenNetwork returns nil when tokenID may be used from client: it
// has no entry, or client is in its networks. An unreadable or broken file
// refuses every token.
func (a *Authenticator) checkTokenNetwork(tokenID string, client netip.Addr) error {
	sets, _, err := a.tokenNets.get(a.deps.FS, a.deps.Clock())
	if err != nil {
		return err
	}
	set, ok := sets[tokenID]
	if !ok {
		return nil
	}
	if !client.IsValid() {
		return fmt.Errorf("%w (client address unknown)", ErrTokenNetwork)
	}
	if !netacl.Contains(set, client) {
		return fmt.Errorf("%w (client %s)", ErrTokenNetwork, client.Unmap().WithZone(""))
	}
	return nil
}
