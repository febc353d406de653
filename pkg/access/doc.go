// Package access is PVE's access control: user.cfg (users, API tokens,
// groups, pools, roles, ACLs) with PVE's parser quirks and byte-exact
// writer, privilege and role tables, ACL evaluation (permissions, the
// /access/permissions tree and the login "cap" object), the pve realm's
// priv/shadow.cfg, priv/token.cfg, PAM, and the Authenticator the API layer
// calls on every request to verify tickets, API tokens and CSRF tokens and
// to log users in.
//
// Files are read through a pvefs.Root and cached by the Authenticator until
// they change.
package access
