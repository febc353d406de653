package vncterm

import "testing"

// TestPixelFormats: pixels in each accepted format, both byte orders.
func TestPixelFormats(t *testing.T) {
	for _, tt := range []struct {
		name string
		pf   pixelFormat
		c    rgb
		want []byte
	}{
		{"32 little", defaultPixelFormat, 0x123456, []byte{0x56, 0x34, 0x12, 0}},
		{"32 big", pixelFormat{bpp: 32, depth: 24, bigEndian: true, trueColour: true, redMax: 255, greenMax: 255, blueMax: 255, redShift: 16, greenShift: 8}, 0x123456, []byte{0, 0x12, 0x34, 0x56}},
		{"565 little", pixelFormat{bpp: 16, depth: 16, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5}, 0xffffff, []byte{0xff, 0xff}},
		{"565 big red", pixelFormat{bpp: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5}, 0xff0000, []byte{0xf8, 0x00}},
		{"332", pixelFormat{bpp: 8, depth: 8, trueColour: true, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6}, 0x00ff00, []byte{0x38}},
	} {
		got := make([]byte, tt.pf.bytesPerPixel())
		tt.pf.put(got, tt.c)
		if string(got) != string(tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, got, tt.want)
		}
		if _, err := parsePixelFormat(tt.pf.marshal()); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	for _, b := range [][]byte{
		{24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0}, // 24 bpp
		{16, 16, 0, 1, 0, 255, 0, 63, 0, 31, 11, 5, 0},   // red does not fit
		{32, 24, 0, 1, 0, 100, 0, 255, 0, 255, 16, 8, 0}, // max not 2^n-1
		{32, 24, 0, 1, 0, 0, 0, 255, 0, 255, 16, 8, 0},   // max 0
		{8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},          // colour map
	} {
		if pf, err := parsePixelFormat(b); err == nil {
			t.Errorf("accepted %+v", pf)
		}
	}
}

// TestGlyphFallback: a character the font lacks is drawn as '?'.
func TestGlyphFallback(t *testing.T) {
	if *renderGlyph('\u4e2d', false) != *renderGlyph('?', false) {
		t.Error("missing glyph not drawn as '?'")
	}
	if *renderGlyph('a', false) == *renderGlyph('?', false) || *renderGlyph('a', true) == *renderGlyph('a', false) {
		t.Error("glyphs not told apart")
	}
}

// BenchmarkFullScreen renders a full 80x25 screen at 32 bits per pixel.
func BenchmarkFullScreen(b *testing.B) {
	s := newScreen(80, 25)
	for range 25 {
		s.Write([]byte("The quick brown fox jumps over the lazy dog 0123456789 !\"#$%&'()*+,-./:;<=>?@[]\r\n"))
	}
	gc := glyphCache{}
	buf := make([]byte, 80*cellWidth*cellHeight*4)
	b.SetBytes(int64(len(buf) * 25))
	for b.Loop() {
		for y := range 25 {
			renderCells(buf, s.cells[y*80:(y+1)*80], -1, defaultPixelFormat, gc)
		}
	}
}
