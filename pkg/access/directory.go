package access

import (
	"context"
	"errors"
	"io/fs"

	"github.com/pvenode/pvenode/pkg/pvefs"
)

// UserExists reports whether userid is a user of the current user.cfg.
func (a *Authenticator) UserExists(userid string) bool {
	cfg := a.UserCfg()
	return cfg != nil && cfg.Users[userid] != nil
}

// GroupMembers returns every group of the current user.cfg with its
// members.
func (a *Authenticator) GroupMembers() map[string][]string {
	cfg := a.UserCfg()
	if cfg == nil {
		return nil
	}
	out := make(map[string][]string, len(cfg.Groups))
	for name, g := range cfg.Groups {
		out[name] = sortedKeys(g.Members)
	}
	return out
}

// RemovePassword removes user's entry from priv/shadow.cfg (the pve
// realm's passwords) under its lock.
func RemovePassword(ctx context.Context, root *pvefs.Root, user string) error {
	if _, err := root.ReadFile(ShadowFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return root.Update(ctx, ShadowFile, 0o600, func(old []byte) ([]byte, error) {
		s, _ := ParseShadow(ShadowFile, old)
		delete(s, user)
		return s.Marshal(), nil
	})
}
