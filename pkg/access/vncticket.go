package access

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pvenode/pvenode/pkg/ticket"
)

// VNC tickets (PVE's assemble_vnc_ticket / verify_vnc_ticket): short-lived
// tickets "PVEVNC:<TIME>::<signature>" signed with the login key over
// "<user>:<path>:<port>", so they name neither user nor path in plain text
// and are valid for one console port only. They are accepted from 20 s in
// the future to 40 s old, by the current key only, as PVE.

// PrefixVNC is the prefix of VNC tickets.
const PrefixVNC = "PVEVNC"

// ErrInvalidVNCTicket is returned for a VNC ticket that does not verify.
var ErrInvalidVNCTicket = errors.New("invalid ticket")

func vncSecret(user, path string, port int) string {
	return user + ":" + path + ":" + strconv.Itoa(port)
}

// AssembleVNCTicket signs a VNC ticket for user on path (such as /vms/100)
// and port. It needs the private key (pvedaemon).
func (a *Authenticator) AssembleVNCTicket(ctx context.Context, user, path string, port int) (string, error) {
	now := a.deps.Clock()
	key, err := a.signingKey(ctx, now)
	if err != nil {
		return "", fmt.Errorf("vnc ticket: %w", err)
	}
	return ticket.Sign(key, PrefixVNC, "", vncSecret(user, path, port), now)
}

// VerifyVNCTicket checks a VNC ticket for user, path and port. A ticket in
// the "<8-character password>:PVEVNC:..." form vncproxy answers is
// accepted too, as PVE does.
func (a *Authenticator) VerifyVNCTicket(tk, user, path string, port int) error {
	if len(tk) > 9 && tk[8] == ':' && strings.HasPrefix(tk[9:], PrefixVNC+":") {
		tk = tk[9:]
	}
	now := a.deps.Clock()
	pub, mtime, err := a.pub.get(a.deps.FS, now)
	if err != nil || pub == nil || now.Unix()-mtime.Unix() > ticket.KeyLifetime {
		return ErrInvalidVNCTicket
	}
	if _, _, err := ticket.VerifyWindow(tk, PrefixVNC, vncSecret(user, path, port), pub, now, -20, 40); err != nil {
		return ErrInvalidVNCTicket
	}
	return nil
}
