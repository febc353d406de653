// Package termproxy is the server side of PVE's termproxy protocol (the
// program of pve-xtermjs behind the xterm.js consoles), run in-process:
// a console task listens on a loopback port of 5900-5999 (Listen), takes
// one connection from pveproxy's WebSocket relay (Accept), reads the
// client's "<user>:<ticket>\n" line and answers "OK" once the caller's
// check accepts it (Handshake), then relays between the client and a
// backend such as a shell's PTY or a VM's serial socket (Client.Relay).
//
// After "OK" the client sends "0:<len>:<len bytes>" (input, written to
// the backend), "1:<cols>:<rows>:" (resize, passed to Backend.Resize) or
// "2" (ping); bytes of no message and malformed numbers are skipped, as
// termproxy does. The backend's output goes to the client as raw bytes.
// Each direction holds one bounded buffer: a slow side slows the other
// down.
//
// The package knows nothing of tickets, privileges or what runs behind
// the backend; those are the caller's.
package termproxy
