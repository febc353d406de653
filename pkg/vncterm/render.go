package vncterm

import (
	"encoding/binary"
	"image"

	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/font/inconsolata"
	"golang.org/x/image/math/fixed"
)

// Character cell size in pixels: Inconsolata 8x16's advance and height.
const (
	cellWidth  = 8
	cellHeight = 16
	// maxGlyphCache bounds the glyphs kept rendered per connection.
	maxGlyphCache = 1024
)

// glyph is a character's coverage in its cell, row-major, 0..255.
type glyph [cellWidth * cellHeight]uint8

// glyphKey names a glyph: the character and whether it is bold.
type glyphKey struct {
	ch   rune
	bold bool
}

// fontFace returns the face for bold or regular text.
func fontFace(bold bool) *basicfont.Face {
	if bold {
		return inconsolata.Bold8x16
	}
	return inconsolata.Regular8x16
}

// renderGlyph rasterises ch into a cell, clipped to it; a character the
// font lacks is drawn as '?'.
func renderGlyph(ch rune, bold bool) *glyph {
	face := fontFace(bold)
	var g glyph
	if ch == ' ' || ch == 0 {
		return &g
	}
	dr, mask, mp, _, ok := face.Glyph(fixed.P(0, face.Ascent), ch)
	if !ok || mask == nil {
		dr, mask, mp, _, ok = face.Glyph(fixed.P(0, face.Ascent), '?')
		if !ok || mask == nil {
			return &g
		}
	}
	alpha, _ := mask.(*image.Alpha)
	for y := max(dr.Min.Y, 0); y < min(dr.Max.Y, cellHeight); y++ {
		for x := max(dr.Min.X, 0); x < min(dr.Max.X, cellWidth); x++ {
			mx, my := mp.X+x-dr.Min.X, mp.Y+y-dr.Min.Y
			var a uint8
			if alpha != nil {
				a = alpha.AlphaAt(mx, my).A
			} else {
				_, _, _, a32 := mask.At(mx, my).RGBA()
				a = uint8(a32 >> 8)
			}
			g[y*cellWidth+x] = a
		}
	}
	return &g
}

// glyphCache keeps the glyphs of one connection, bounded.
type glyphCache map[glyphKey]*glyph

func (gc glyphCache) get(ch rune, bold bool) *glyph {
	k := glyphKey{ch, bold}
	if g, ok := gc[k]; ok {
		return g
	}
	g := renderGlyph(ch, bold)
	if len(gc) < maxGlyphCache {
		gc[k] = g
	}
	return g
}

// blend mixes fg over bg with coverage a (0..255).
func blend(fg, bg rgb, a uint8) rgb {
	switch a {
	case 0:
		return bg
	case 255:
		return fg
	}
	mix := func(f, b uint32) uint32 { return (f*uint32(a) + b*(255-uint32(a)) + 127) / 255 }
	return rgb(mix(fg.r(), bg.r())<<16 | mix(fg.g(), bg.g())<<8 | mix(fg.b(), bg.b()))
}

// pixelFormat is RFB's PIXEL_FORMAT; only true colour ones are accepted.
type pixelFormat struct {
	bpp, depth                      uint8
	bigEndian, trueColour           bool
	redMax, greenMax, blueMax       uint16
	redShift, greenShift, blueShift uint8
}

// defaultPixelFormat is the server's: 32-bit little-endian xRGB.
var defaultPixelFormat = pixelFormat{
	bpp: 32, depth: 24, trueColour: true,
	redMax: 255, greenMax: 255, blueMax: 255,
	redShift: 16, greenShift: 8, blueShift: 0,
}

// marshal is the 16 bytes of the PIXEL_FORMAT structure.
func (pf pixelFormat) marshal() []byte {
	b := make([]byte, 16)
	b[0], b[1] = pf.bpp, pf.depth
	if pf.bigEndian {
		b[2] = 1
	}
	if pf.trueColour {
		b[3] = 1
	}
	binary.BigEndian.PutUint16(b[4:], pf.redMax)
	binary.BigEndian.PutUint16(b[6:], pf.greenMax)
	binary.BigEndian.PutUint16(b[8:], pf.blueMax)
	b[10], b[11], b[12] = pf.redShift, pf.greenShift, pf.blueShift
	return b
}

// bytesPerPixel is the size of one pixel on the wire.
func (pf pixelFormat) bytesPerPixel() int { return int(pf.bpp) / 8 }

// put writes colour c as one pixel at the start of dst.
func (pf pixelFormat) put(dst []byte, c rgb) {
	scale := func(v uint32, maxv uint16) uint32 { return (v*uint32(maxv) + 127) / 255 }
	v := scale(c.r(), pf.redMax)<<pf.redShift | scale(c.g(), pf.greenMax)<<pf.greenShift | scale(c.b(), pf.blueMax)<<pf.blueShift
	switch pf.bpp {
	case 8:
		dst[0] = uint8(v)
	case 16:
		if pf.bigEndian {
			binary.BigEndian.PutUint16(dst, uint16(v))
		} else {
			binary.LittleEndian.PutUint16(dst, uint16(v))
		}
	default:
		if pf.bigEndian {
			binary.BigEndian.PutUint32(dst, v)
		} else {
			binary.LittleEndian.PutUint32(dst, v)
		}
	}
}

// renderCells draws cells (one row of the screen, columns x0.. of it) in
// raw encoding into dst, which must hold len(cells)*cellWidth*cellHeight
// pixels. cursor is the index in cells of the cursor's cell, drawn
// reversed, or -1.
func renderCells(dst []byte, cells []cell, cursor int, pf pixelFormat, gc glyphCache) {
	bpp := pf.bytesPerPixel()
	stride := len(cells) * cellWidth * bpp
	for i, c := range cells {
		fg, bg := c.fg, c.bg
		if i == cursor {
			fg, bg = bg, fg
		}
		g := gc.get(c.ch, c.bold)
		for y := range cellHeight {
			row := dst[y*stride+i*cellWidth*bpp:]
			for x := range cellWidth {
				a := g[y*cellWidth+x]
				if c.underline && y == cellHeight-2 {
					a = 255
				}
				pf.put(row[x*bpp:], blend(fg, bg, a))
			}
		}
	}
}
