// Package pvefs is the only gate to the config root (/etc/pve on a real node):
// reads, atomic writes (temp file, fsync, rename, fsync of the directory), an
// advisory lock per file for read-modify-write, and change notification.
//
// Every feature that reads or writes the config root goes through a *Root, so
// that a replicated store can later replace the local directory in one place.
// Names passed to a Root are slash-separated paths relative to the root, such
// as "user.cfg" or "priv/shadow.cfg"; absolute paths and ".." are refused.
package pvefs
