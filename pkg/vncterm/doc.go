// Package vncterm is a VNC (RFB) server for one client that shows a text
// terminal: the console of a VM whose display is a serial port, as PVE's
// vncterm program serves it behind noVNC.
//
// [Serve] speaks RFB 3.8 (and 3.3/3.7 to older clients) with VNC
// authentication only, shows a framebuffer of character cells drawn with a
// fixed 8x16 bitmap font, feeds the backend's bytes (the serial port's
// output) to a VT100/xterm-subset terminal emulator, and turns the client's
// key events into the bytes an xterm would send to the backend.
//
// Parsing of escape sequences is github.com/charmbracelet/x/ansi's state
// machine (bounded parameters and string data); the screen model on top of
// it (cursor movement, erase, scrolling region, SGR colours, line wrap) is
// here, with every count clamped to the screen. The font is Inconsolata
// 8x16 from golang.org/x/image/font/inconsolata.
package vncterm
