package vncterm

import (
	"fmt"

	"github.com/charmbracelet/x/ansi"
)

// Screen limits. Every count in an escape sequence is clamped to the
// screen, so no sequence loops longer than a screen's worth.
const (
	maxCols = 512
	maxRows = 256
	// maxReplies bounds the answers to the backend's queries (DSR, DA)
	// not sent yet; more are dropped.
	maxReplies = 256
	// tabWidth is the distance of the initial tab stops.
	tabWidth = 8
)

// rgb is a colour as 0xRRGGBB.
type rgb uint32

func (c rgb) r() uint32 { return uint32(c>>16) & 0xff }
func (c rgb) g() uint32 { return uint32(c>>8) & 0xff }
func (c rgb) b() uint32 { return uint32(c) & 0xff }

// The VGA text mode palette, as vncterm's.
var vgaPalette = [16]rgb{
	0x000000, 0xaa0000, 0x00aa00, 0xaa5500, 0x0000aa, 0xaa00aa, 0x00aaaa, 0xaaaaaa,
	0x555555, 0xff5555, 0x55ff55, 0xffff55, 0x5555ff, 0xff55ff, 0x55ffff, 0xffffff,
}

// Default colours: palette indexes.
const (
	defaultFG = 7
	defaultBG = 0
)

// colourKind says what a pen's colour is.
type colourKind uint8

const (
	colourDefault colourKind = iota
	colourIndexed            // v is an xterm 256-colour index
	colourDirect             // v is an rgb
)

// penColour is a colour as SGR set it.
type penColour struct {
	kind colourKind
	v    uint32
}

// pen is the attributes characters are written with.
type pen struct {
	fg, bg                   penColour
	bold, reverse, underline bool
}

// indexColour is an xterm 256-colour palette entry.
func indexColour(i uint32) rgb {
	switch {
	case i < 16:
		return vgaPalette[i]
	case i < 232:
		i -= 16
		level := func(v uint32) uint32 {
			if v == 0 {
				return 0
			}
			return 55 + 40*v
		}
		return rgb(level(i/36)<<16 | level(i/6%6)<<8 | level(i%6))
	case i < 256:
		g := 8 + 10*(i-232)
		return rgb(g<<16 | g<<8 | g)
	}
	return vgaPalette[defaultFG]
}

// colours resolves the pen to the colours of a cell written with it.
func (p pen) colours() (fg, bg rgb) {
	fg = vgaPalette[defaultFG]
	if p.bold {
		fg = vgaPalette[defaultFG+8]
	}
	switch p.fg.kind {
	case colourIndexed:
		i := p.fg.v
		if p.bold && i < 8 {
			i += 8
		}
		fg = indexColour(i)
	case colourDirect:
		fg = rgb(p.fg.v)
	}
	bg = vgaPalette[defaultBG]
	switch p.bg.kind {
	case colourIndexed:
		bg = indexColour(p.bg.v)
	case colourDirect:
		bg = rgb(p.bg.v)
	}
	if p.reverse {
		fg, bg = bg, fg
	}
	return fg, bg
}

// cell is one character cell of the screen.
type cell struct {
	ch              rune
	fg, bg          rgb
	bold, underline bool
}

// span is the dirty columns of a row: lo..hi; lo > hi when clean.
type span struct{ lo, hi int }

// cursorState is what DECSC saves.
type cursorState struct {
	x, y        int
	pen         pen
	lineDrawing bool
	originMode  bool
}

// screen is the terminal emulator: the state of the cells the backend's
// output draws. It is not safe for concurrent use.
type screen struct {
	cols, rows int
	cells      []cell // rows*cols, row-major
	dirty      []span // per row, since the last takeDirty

	x, y     int  // cursor, 0-based
	wrapNext bool // the last column was written: the next character wraps
	pen      pen
	top, bot int // scrolling region, inclusive

	autowrap, originMode, cursorVisible, appCursor, lineDrawing bool

	saved    cursorState
	altSaved []cell // the main screen while the alternate one shows
	tabs     []bool

	// drawnX, drawnY, drawnVisible: the cursor as last taken by takeDirty.
	drawnX, drawnY int
	drawnVisible   bool

	replies []byte // answers to the backend's queries, bounded
	parser  *ansi.Parser
}

// newScreen returns a cleared screen of cols x rows.
func newScreen(cols, rows int) *screen {
	s := &screen{cols: cols, rows: rows}
	s.cells = make([]cell, cols*rows)
	s.dirty = make([]span, rows)
	s.tabs = make([]bool, cols)
	s.parser = ansi.NewParser()
	s.parser.SetDataSize(256) // OSC/DCS strings: only their end matters here
	s.parser.SetHandler(ansi.Handler{
		Print:     s.print,
		Execute:   s.execute,
		HandleCsi: s.csi,
		HandleEsc: s.esc,
	})
	s.reset()
	return s
}

// reset is RIS: the initial state, screen cleared.
func (s *screen) reset() {
	s.pen = pen{}
	s.x, s.y, s.wrapNext = 0, 0, false
	s.top, s.bot = 0, s.rows-1
	s.autowrap, s.originMode, s.cursorVisible, s.appCursor, s.lineDrawing = true, false, true, false, false
	s.saved = cursorState{}
	s.altSaved = nil
	for i := range s.tabs {
		s.tabs[i] = i > 0 && i%tabWidth == 0
	}
	s.erase(0, 0, s.cols-1, s.rows-1)
}

// Write feeds the backend's output to the terminal.
func (s *screen) Write(p []byte) (int, error) {
	for _, b := range p {
		s.parser.Advance(b)
	}
	return len(p), nil
}

// takeReplies returns and forgets the answers to send to the backend.
func (s *screen) takeReplies() []byte {
	r := s.replies
	s.replies = nil
	return r
}

func (s *screen) reply(format string, args ...any) {
	r := fmt.Sprintf(format, args...)
	if len(s.replies)+len(r) <= maxReplies {
		s.replies = append(s.replies, r...)
	}
}

// at returns the cell at column x, row y.
func (s *screen) at(x, y int) *cell { return &s.cells[y*s.cols+x] }

// markDirty marks columns lo..hi of row y changed.
func (s *screen) markDirty(y, lo, hi int) {
	d := &s.dirty[y]
	if d.lo > d.hi {
		d.lo, d.hi = lo, hi
		return
	}
	d.lo, d.hi = min(d.lo, lo), max(d.hi, hi)
}

func (s *screen) markRows(y0, y1 int) {
	for y := y0; y <= y1; y++ {
		s.markDirty(y, 0, s.cols-1)
	}
}

// noteCursor marks the cells of the cursor as last drawn and as it is
// now changed, if it moved or appeared or vanished.
func (s *screen) noteCursor() {
	if s.x != s.drawnX || s.y != s.drawnY || s.cursorVisible != s.drawnVisible {
		s.markDirty(s.drawnY, s.drawnX, s.drawnX)
		s.markDirty(s.y, s.x, s.x)
	}
	s.drawnX, s.drawnY, s.drawnVisible = s.x, s.y, s.cursorVisible
}

// hasDirtyIn says whether a cell of columns x0..x1 of rows y0..y1 changed
// since it was last taken, the cursor included.
func (s *screen) hasDirtyIn(x0, y0, x1, y1 int) bool {
	s.noteCursor()
	for y := y0; y <= y1; y++ {
		if d := s.dirty[y]; max(d.lo, x0) <= min(d.hi, x1) {
			return true
		}
	}
	return false
}

// takeDirty returns the changed spans per row (all of the screen if all)
// and marks the screen clean.
func (s *screen) takeDirty(all bool) []span {
	if all {
		s.markRows(0, s.rows-1)
	}
	s.noteCursor()
	d := make([]span, s.rows)
	copy(d, s.dirty)
	for i := range s.dirty {
		s.dirty[i] = span{lo: 1, hi: 0}
	}
	return d
}

// blank is an erased cell: the pen's background (xterm's BCE).
func (s *screen) blank() cell {
	p := s.pen
	p.reverse, p.bold = false, false
	fg, bg := p.colours()
	if s.pen.reverse {
		bg = fg
		fg = vgaPalette[defaultBG]
	}
	return cell{ch: ' ', fg: fg, bg: bg}
}

// erase blanks the cells from (x0, y0) to (x1, y1) in reading order
// (x0..x1 of one row when y0 == y1).
func (s *screen) erase(x0, y0, x1, y1 int) {
	b := s.blank()
	for y := y0; y <= y1; y++ {
		lo, hi := 0, s.cols-1
		if y == y0 {
			lo = x0
		}
		if y == y1 {
			hi = x1
		}
		if lo > hi {
			continue
		}
		for x := lo; x <= hi; x++ {
			*s.at(x, y) = b
		}
		s.markDirty(y, lo, hi)
	}
}

// scrollUp moves rows top+n..bot up by n and blanks the last n rows of
// the region.
func (s *screen) scrollUp(top, bot, n int) {
	n = min(n, bot-top+1)
	if n <= 0 {
		return
	}
	copy(s.cells[top*s.cols:(bot+1)*s.cols], s.cells[(top+n)*s.cols:(bot+1)*s.cols])
	s.erase(0, bot-n+1, s.cols-1, bot)
	s.markRows(top, bot)
}

// scrollDown moves rows top..bot-n down by n and blanks the first n rows.
func (s *screen) scrollDown(top, bot, n int) {
	n = min(n, bot-top+1)
	if n <= 0 {
		return
	}
	copy(s.cells[(top+n)*s.cols:(bot+1)*s.cols], s.cells[top*s.cols:(bot+1-n)*s.cols])
	s.erase(0, top, s.cols-1, top+n-1)
	s.markRows(top, bot)
}

// lineFeed moves the cursor down, scrolling at the region's bottom.
func (s *screen) lineFeed() {
	s.wrapNext = false
	switch {
	case s.y == s.bot:
		s.scrollUp(s.top, s.bot, 1)
	case s.y < s.rows-1:
		s.y++
	}
}

// reverseIndex moves the cursor up, scrolling at the region's top.
func (s *screen) reverseIndex() {
	s.wrapNext = false
	switch {
	case s.y == s.top:
		s.scrollDown(s.top, s.bot, 1)
	case s.y > 0:
		s.y--
	}
}

// moveTo puts the cursor at column x, row y (0-based, clamped; rows
// relative to the region in origin mode).
func (s *screen) moveTo(x, y int) {
	lo, hi := 0, s.rows-1
	if s.originMode {
		y += s.top
		lo, hi = s.top, s.bot
	}
	s.x = clamp(x, 0, s.cols-1)
	s.y = clamp(y, lo, hi)
	s.wrapNext = false
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// lineDrawingChars maps the DEC special graphics set ('_'..'~') to ASCII
// look-alikes: the font has no box-drawing glyphs.
var lineDrawingChars = [32]rune{
	' ', '+', '#', '?', '?', '?', '?', '\'', '#', '?', '?', '+', '+', '+', '+', '+',
	'-', '-', '-', '-', '_', '+', '+', '+', '+', '|', '<', '>', '*', '!', '#', '.',
}

// print writes a character at the cursor.
func (s *screen) print(r rune) {
	if s.lineDrawing && r >= '_' && r <= '~' {
		r = lineDrawingChars[r-'_']
	}
	if s.wrapNext && s.autowrap {
		s.x = 0
		s.lineFeed()
	}
	s.wrapNext = false
	fg, bg := s.pen.colours()
	*s.at(s.x, s.y) = cell{ch: r, fg: fg, bg: bg, bold: s.pen.bold, underline: s.pen.underline}
	s.markDirty(s.y, s.x, s.x)
	if s.x < s.cols-1 {
		s.x++
	} else {
		s.wrapNext = true
	}
}

// execute is a C0 control.
func (s *screen) execute(b byte) {
	switch b {
	case '\b':
		if s.x > 0 {
			s.x--
		}
		s.wrapNext = false
	case '\t':
		s.tab(1)
	case '\n', '\v', '\f':
		s.lineFeed()
	case '\r':
		s.x, s.wrapNext = 0, false
	}
}

// tab moves the cursor n tab stops forward (n < 0: backward).
func (s *screen) tab(n int) {
	s.wrapNext = false
	for ; n > 0 && s.x < s.cols-1; n-- {
		for s.x++; s.x < s.cols-1 && !s.tabs[s.x]; s.x++ {
		}
	}
	for ; n < 0 && s.x > 0; n++ {
		for s.x--; s.x > 0 && !s.tabs[s.x]; s.x-- {
		}
	}
}

// esc is an ESC sequence.
func (s *screen) esc(cmd ansi.Cmd) {
	switch cmd.Intermediate() {
	case '(': // G0 character set
		s.lineDrawing = cmd.Final() == '0'
		return
	case '#':
		if cmd.Final() == '8' { // DECALN
			for i := range s.cells {
				s.cells[i] = cell{ch: 'E', fg: vgaPalette[defaultFG], bg: vgaPalette[defaultBG]}
			}
			s.markRows(0, s.rows-1)
		}
		return
	case 0:
	default:
		return
	}
	switch cmd.Final() {
	case '7':
		s.saveCursor()
	case '8':
		s.restoreCursor()
	case 'D': // IND
		s.lineFeed()
	case 'E': // NEL
		s.x = 0
		s.lineFeed()
	case 'M': // RI
		s.reverseIndex()
	case 'H': // HTS
		s.tabs[s.x] = true
	case 'c': // RIS
		s.reset()
	}
}

func (s *screen) saveCursor() {
	s.saved = cursorState{x: s.x, y: s.y, pen: s.pen, lineDrawing: s.lineDrawing, originMode: s.originMode}
}

func (s *screen) restoreCursor() {
	c := s.saved
	s.pen, s.lineDrawing, s.originMode = c.pen, c.lineDrawing, c.originMode
	s.x, s.y = clamp(c.x, 0, s.cols-1), clamp(c.y, 0, s.rows-1)
	s.wrapNext = false
}

// param returns parameter i of a CSI sequence, def if missing, clamped to
// 0..limit.
func param(p ansi.Params, i, def, limit int) int {
	v, _, _ := p.Param(i, def)
	return clamp(v, 0, limit)
}

// count returns parameter i as a count: missing or 0 is 1, at most limit.
func count(p ansi.Params, i, limit int) int {
	return max(1, param(p, i, 1, limit))
}

// csi is a CSI sequence.
func (s *screen) csi(cmd ansi.Cmd, p ansi.Params) {
	if cmd.Intermediate() != 0 {
		return // DECSCUSR and the like: nothing to show
	}
	lim := max(s.cols, s.rows)
	switch cmd.Prefix() {
	case '?':
		switch cmd.Final() {
		case 'h', 'l':
			s.privateMode(p, cmd.Final() == 'h')
		}
		return
	case 0:
	default:
		return // DA2, xterm's key modifiers and the like
	}
	switch cmd.Final() {
	case 'A': // CUU
		lo := 0
		if s.y >= s.top {
			lo = s.top
		}
		s.y, s.wrapNext = max(s.y-count(p, 0, lim), lo), false
	case 'B', 'e': // CUD, VPR
		hi := s.rows - 1
		if s.y <= s.bot {
			hi = s.bot
		}
		s.y, s.wrapNext = min(s.y+count(p, 0, lim), hi), false
	case 'C', 'a': // CUF, HPR
		s.x, s.wrapNext = min(s.x+count(p, 0, lim), s.cols-1), false
	case 'D': // CUB
		s.x, s.wrapNext = max(s.x-count(p, 0, lim), 0), false
	case 'E': // CNL
		s.y, s.x, s.wrapNext = min(s.y+count(p, 0, lim), s.rows-1), 0, false
	case 'F': // CPL
		s.y, s.x, s.wrapNext = max(s.y-count(p, 0, lim), 0), 0, false
	case 'G', '`': // CHA, HPA
		s.x, s.wrapNext = clamp(count(p, 0, lim)-1, 0, s.cols-1), false
	case 'd': // VPA
		y := count(p, 0, lim) - 1
		if s.originMode {
			y += s.top
		}
		s.y, s.wrapNext = clamp(y, 0, s.rows-1), false
	case 'H', 'f': // CUP, HVP
		s.moveTo(count(p, 1, lim)-1, count(p, 0, lim)-1)
	case 'I': // CHT
		s.tab(count(p, 0, lim))
	case 'Z': // CBT
		s.tab(-count(p, 0, lim))
	case 'J': // ED
		switch param(p, 0, 0, 3) {
		case 0:
			s.erase(s.x, s.y, s.cols-1, s.rows-1)
		case 1:
			s.erase(0, 0, s.x, s.y)
		default:
			s.erase(0, 0, s.cols-1, s.rows-1)
		}
	case 'K': // EL
		switch param(p, 0, 0, 2) {
		case 0:
			s.erase(s.x, s.y, s.cols-1, s.y)
		case 1:
			s.erase(0, s.y, s.x, s.y)
		default:
			s.erase(0, s.y, s.cols-1, s.y)
		}
	case 'X': // ECH
		s.erase(s.x, s.y, min(s.x+count(p, 0, lim)-1, s.cols-1), s.y)
	case '@': // ICH
		n := min(count(p, 0, lim), s.cols-s.x)
		row := s.cells[s.y*s.cols : (s.y+1)*s.cols]
		copy(row[s.x+n:], row[s.x:])
		s.erase(s.x, s.y, s.x+n-1, s.y)
		s.markDirty(s.y, s.x, s.cols-1)
	case 'P': // DCH
		n := min(count(p, 0, lim), s.cols-s.x)
		row := s.cells[s.y*s.cols : (s.y+1)*s.cols]
		copy(row[s.x:], row[s.x+n:])
		s.erase(s.cols-n, s.y, s.cols-1, s.y)
		s.markDirty(s.y, s.x, s.cols-1)
	case 'L': // IL
		if s.y >= s.top && s.y <= s.bot {
			s.scrollDown(s.y, s.bot, count(p, 0, lim))
			s.x, s.wrapNext = 0, false
		}
	case 'M': // DL
		if s.y >= s.top && s.y <= s.bot {
			s.scrollUp(s.y, s.bot, count(p, 0, lim))
			s.x, s.wrapNext = 0, false
		}
	case 'S': // SU
		s.scrollUp(s.top, s.bot, count(p, 0, lim))
	case 'T': // SD
		s.scrollDown(s.top, s.bot, count(p, 0, lim))
	case 'm': // SGR
		s.sgr(p)
	case 'r': // DECSTBM
		top, bot := count(p, 0, s.rows), param(p, 1, s.rows, s.rows)
		if bot == 0 {
			bot = s.rows
		}
		if top < bot {
			s.top, s.bot = top-1, bot-1
			s.moveTo(0, 0)
		}
	case 's':
		s.saveCursor()
	case 'u':
		s.restoreCursor()
	case 'g': // TBC
		switch param(p, 0, 0, 3) {
		case 0:
			s.tabs[s.x] = false
		case 3:
			clear(s.tabs)
		}
	case 'n': // DSR
		switch param(p, 0, 0, 6) {
		case 5:
			s.reply("\x1b[0n")
		case 6:
			y := s.y
			if s.originMode {
				y -= s.top
			}
			s.reply("\x1b[%d;%dR", y+1, s.x+1)
		}
	case 'c': // DA: a VT102
		if param(p, 0, 0, 1) == 0 {
			s.reply("\x1b[?6c")
		}
	}
}

// privateMode is DECSET (set) or DECRST.
func (s *screen) privateMode(p ansi.Params, set bool) {
	for i := range p {
		switch param(p, i, 0, 1<<16) {
		case 1: // DECCKM
			s.appCursor = set
		case 6: // DECOM
			s.originMode = set
			s.moveTo(0, 0)
		case 7: // DECAWM
			s.autowrap = set
		case 25: // DECTCEM
			s.cursorVisible = set
		case 47, 1047, 1049: // the alternate screen
			s.alternateScreen(set)
		}
	}
}

// alternateScreen switches to a cleared alternate screen (saving the
// main one and the cursor) or back.
func (s *screen) alternateScreen(on bool) {
	switch {
	case on && s.altSaved == nil:
		s.saveCursor()
		s.altSaved = append([]cell(nil), s.cells...)
		s.erase(0, 0, s.cols-1, s.rows-1)
	case !on && s.altSaved != nil:
		copy(s.cells, s.altSaved)
		s.altSaved = nil
		s.restoreCursor()
		s.markRows(0, s.rows-1)
	}
}

// sgr sets the pen's attributes.
func (s *screen) sgr(p ansi.Params) {
	if len(p) == 0 {
		s.pen = pen{}
		return
	}
	for i := 0; i < len(p); i++ {
		switch a := param(p, i, 0, 1<<16); {
		case a == 0:
			s.pen = pen{}
		case a == 1:
			s.pen.bold = true
		case a == 4:
			s.pen.underline = true
		case a == 7:
			s.pen.reverse = true
		case a == 22:
			s.pen.bold = false
		case a == 24:
			s.pen.underline = false
		case a == 27:
			s.pen.reverse = false
		case a >= 30 && a <= 37:
			s.pen.fg = penColour{colourIndexed, uint32(a - 30)}
		case a == 39:
			s.pen.fg = penColour{}
		case a >= 40 && a <= 47:
			s.pen.bg = penColour{colourIndexed, uint32(a - 40)}
		case a == 49:
			s.pen.bg = penColour{}
		case a >= 90 && a <= 97:
			s.pen.fg = penColour{colourIndexed, uint32(a - 90 + 8)}
		case a >= 100 && a <= 107:
			s.pen.bg = penColour{colourIndexed, uint32(a - 100 + 8)}
		case a == 38 || a == 48:
			c, used := extendedColour(p, i+1)
			i += used
			if c.kind == colourDefault {
				continue
			}
			if a == 38 {
				s.pen.fg = c
			} else {
				s.pen.bg = c
			}
		}
	}
}

// extendedColour reads the colour after SGR 38 or 48 from parameter i
// on: "5;N" (256 colours) or "2;R;G;B". It returns the colour (kind
// colourDefault if malformed) and how many parameters it used.
func extendedColour(p ansi.Params, i int) (penColour, int) {
	switch param(p, i, 0, 255) {
	case 5:
		if i+1 < len(p) {
			return penColour{colourIndexed, uint32(param(p, i+1, 0, 255))}, 2
		}
	case 2:
		if i+3 < len(p) {
			r, g, b := param(p, i+1, 0, 255), param(p, i+2, 0, 255), param(p, i+3, 0, 255)
			return penColour{colourDirect, uint32(r<<16 | g<<8 | b)}, 4
		}
	}
	return penColour{}, len(p) - i // the rest is unreadable
}

// text returns the screen's characters, rows ending in "\n", trailing
// blanks kept (for tests and debugging).
func (s *screen) text() string {
	b := make([]rune, 0, (s.cols+1)*s.rows)
	for y := range s.rows {
		for x := range s.cols {
			c := s.at(x, y).ch
			if c == 0 {
				c = ' '
			}
			b = append(b, c)
		}
		b = append(b, '\n')
	}
	return string(b)
}
