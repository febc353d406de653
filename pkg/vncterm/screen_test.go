package vncterm

import (
	"strings"
	"testing"
)

// rowsOf returns the screen's rows with trailing blanks cut.
func rowsOf(s *screen) []string {
	rows := strings.Split(strings.TrimSuffix(s.text(), "\n"), "\n")
	for i := range rows {
		rows[i] = strings.TrimRight(rows[i], " ")
	}
	return rows
}

// TestScreen: what SeaBIOS, GRUB and a getty send, and what it shows on
// a 10x4 screen; cursor is where the cursor ends.
func TestScreen(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []string
		cursor   [2]int
	}{
		{"text", "ab\r\ncd", []string{"ab", "cd", "", ""}, [2]int{2, 1}},
		{"LF keeps the column", "ab\ncd", []string{"ab", "  cd", "", ""}, [2]int{4, 1}},
		{"wrap", "0123456789ab", []string{"0123456789", "ab", "", ""}, [2]int{2, 1}},
		{"no wrap before the next char", "0123456789", []string{"0123456789", "", "", ""}, [2]int{9, 0}},
		{"wrap off", "\x1b[?7l0123456789ab", []string{"012345678b", "", "", ""}, [2]int{9, 0}},
		{"scroll", "1\r\n2\r\n3\r\n4\r\n5", []string{"2", "3", "4", "5"}, [2]int{1, 3}},
		{"CUP and ED", "xxxx\r\nyyyy\x1b[2J\x1b[2;3Hz", []string{"", "  z", "", ""}, [2]int{3, 1}},
		{"CUP clamped", "\x1b[99;99Hz", []string{"", "", "", "         z"}, [2]int{9, 3}},
		{"home", "abc\x1b[Hz", []string{"zbc", "", "", ""}, [2]int{1, 0}},
		{"EL right", "abcdef\x1b[3G\x1b[K", []string{"ab", "", "", ""}, [2]int{2, 0}},
		{"EL left", "abcdef\x1b[3G\x1b[1K", []string{"   def", "", "", ""}, [2]int{2, 0}},
		{"ED below", "aaa\r\nbbb\r\nccc\x1b[2;2H\x1b[J", []string{"aaa", "b", "", ""}, [2]int{1, 1}},
		{"ED above", "aaa\r\nbbb\r\nccc\x1b[2;2H\x1b[1J", []string{"", "  b", "ccc", ""}, [2]int{1, 1}},
		{"cursor moves", "\x1b[3B\x1b[4Cx\x1b[2Ay\x1b[3Dz", []string{"", "   z y", "", "    x"}, [2]int{4, 1}},
		{"backspace and tab", "abc\b\bX\tY", []string{"aXc     Y", "", "", ""}, [2]int{9, 0}},
		{"scrolling region", "1\r\n2\r\n3\r\n4\x1b[2;3r\x1b[3;1H\n\nx", []string{"1", "", "x", "4"}, [2]int{1, 2}},
		{"reverse index at top", "a\x1b[H\x1bMb", []string{"b", "a", "", ""}, [2]int{1, 0}},
		{"insert and delete chars", "abcdef\x1b[1G\x1b[2@\x1b[5G\x1b[P", []string{"  abdef", "", "", ""}, [2]int{4, 0}},
		{"insert and delete lines", "1\r\n2\r\n3\x1b[2;1H\x1b[L\x1b[4;1H\x1b[M", []string{"1", "", "2", ""}, [2]int{0, 3}},
		{"ECH", "abcdef\x1b[2G\x1b[3X", []string{"a   ef", "", "", ""}, [2]int{1, 0}},
		{"save and restore", "ab\x1b7\x1b[3;3Hx\x1b8c", []string{"abc", "", "  x", ""}, [2]int{3, 0}},
		{"line drawing", "\x1b(0lqk\x1b(Bq", []string{"+-+q", "", "", ""}, [2]int{4, 0}},
		{"RIS", "abc\x1bc", []string{"", "", "", ""}, [2]int{0, 0}},
		{"alternate screen", "main\x1b[?1049hALT\x1b[?1049l", []string{"main", "", "", ""}, [2]int{4, 0}},
		{"UTF-8", "é€", []string{"é€", "", "", ""}, [2]int{2, 0}},
		{"OSC title ignored", "\x1b]0;title\x07ok", []string{"ok", "", "", ""}, [2]int{2, 0}},
		{"huge counts", "\x1b[99999999999999999999999C\x1b[9999999999I\x1b[999999999@x", []string{"         x", "", "", ""}, [2]int{9, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newScreen(10, 4)
			s.Write([]byte(tt.in))
			if got := rowsOf(s); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("screen %q, want %q", got, tt.want)
			}
			if got := [2]int{s.x, s.y}; got != tt.cursor {
				t.Errorf("cursor %v, want %v", got, tt.cursor)
			}
		})
	}
}

// TestScreenColours: SGR colours and attributes land in the cells.
func TestScreenColours(t *testing.T) {
	s := newScreen(10, 2)
	s.Write([]byte("\x1b[31ma\x1b[1mb\x1b[0;44mc\x1b[7md\x1b[0;38;5;196me\x1b[38;2;1;2;3mf\x1b[0m\x1b[4mg\x1b[m\x1b[42m\x1b[K"))
	for i, want := range []struct {
		fg, bg rgb
		ul     bool
	}{
		{0xaa0000, 0, false},
		{0xff5555, 0, false}, // bold red is bright red
		{0xaaaaaa, 0x0000aa, false},
		{0x0000aa, 0xaaaaaa, false}, // reverse
		{0xff0000, 0, false},        // 256-colour cube
		{0x010203, 0, false},
		{0xaaaaaa, 0, true},
		{0xaaaaaa, 0x00aa00, false}, // erased with the background colour
	} {
		c := s.at(i, 0)
		if c.fg != want.fg || c.bg != want.bg || c.underline != want.ul {
			t.Errorf("cell %d %q: fg %06x bg %06x ul %v, want %06x %06x %v", i, c.ch, c.fg, c.bg, c.underline, want.fg, want.bg, want.ul)
		}
	}
}

// TestScreenReplies: DSR and DA are answered, bounded.
func TestScreenReplies(t *testing.T) {
	s := newScreen(10, 4)
	s.Write([]byte("ab\r\nc\x1b[6n\x1b[5n\x1b[c"))
	if got := string(s.takeReplies()); got != "\x1b[2;2R\x1b[0n\x1b[?6c" {
		t.Errorf("replies %q", got)
	}
	s.Write([]byte(strings.Repeat("\x1b[6n", 1000)))
	if got := len(s.takeReplies()); got > maxReplies {
		t.Errorf("%d bytes of replies kept", got)
	}
}

// TestScreenDirty: only what changed is dirty, the cursor's cells too.
func TestScreenDirty(t *testing.T) {
	s := newScreen(10, 4)
	s.takeDirty(false)
	if s.hasDirtyIn(0, 0, 9, 3) {
		t.Fatal("dirty after takeDirty")
	}
	s.Write([]byte("\x1b[3;4Hxy"))
	if s.hasDirtyIn(0, 1, 9, 1) || s.hasDirtyIn(6, 0, 9, 3) {
		t.Error("row 1 or columns 6-9 dirty")
	}
	d := s.takeDirty(false)
	if d[0] != (span{0, 0}) || d[2] != (span{3, 5}) || d[1].lo <= d[1].hi {
		t.Errorf("dirty %v", d)
	}
}

// FuzzScreen: any backend output leaves the cursor on the screen and
// never panics.
func FuzzScreen(f *testing.F) {
	for _, s := range []string{
		"hello\r\n", "\x1b[2J\x1b[H", "\x1b[1;31mred\x1b[0m", "\x1b[?1049h\x1b[?1049l",
		"\x1b[5;10r\x1b[99S\x1b[99T", "\x1b]0;t\x07", "\x1bP1$r\x1b\\", "\xff\xfe\xc3", "\x1b[38;2;1;2m",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newScreen(7, 3)
		s.Write(data)
		if s.x < 0 || s.x >= s.cols || s.y < 0 || s.y >= s.rows || s.top < 0 || s.bot >= s.rows || s.top > s.bot {
			t.Fatalf("cursor %d,%d region %d-%d", s.x, s.y, s.top, s.bot)
		}
		s.takeDirty(true)
		if len(s.takeReplies()) > maxReplies {
			t.Fatal("replies unbounded")
		}
	})
}
