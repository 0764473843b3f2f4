package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
)

// glyphs is a 5×7 bitmap font (rows top to bottom, bit 4 = leftmost pixel) for the
// plot's labels: the standard library has no font, and the plot needs only these.
var glyphs = map[rune][7]uint8{
	'A': {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, 'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, 'D': {0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, 'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, 'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, 'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, 'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, 'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, 'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, 'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, 'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, 'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, 'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, '1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, '3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, '5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, '7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, '9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'.': {0, 0, 0, 0, 0, 0x0C, 0x0C}, ',': {0, 0, 0, 0, 0x0C, 0x04, 0x08},
	'-': {0, 0, 0, 0x1F, 0, 0, 0}, '/': {0, 0x01, 0x02, 0x04, 0x08, 0x10, 0},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, ')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	':': {0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0}, '=': {0, 0, 0x1F, 0, 0x1F, 0, 0},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, '+': {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0},
	'_': {0, 0, 0, 0, 0, 0, 0x1F}, '*': {0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0},
	' ': {},
}

type canvas struct{ *image.RGBA }

func (c canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			c.Set(x, y, col)
		}
	}
}

// text draws s (upper-cased) at x, y (top left) with pixels of scale×scale.
func (c canvas) text(x, y, scale int, s string, col color.Color) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['*']
		}
		for row := 0; row < 7; row++ {
			for bit := 0; bit < 5; bit++ {
				if g[row]&(1<<(4-bit)) != 0 {
					c.rect(x+bit*scale, y+row*scale, x+(bit+1)*scale, y+(row+1)*scale, col)
				}
			}
		}
		x += 6 * scale
	}
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

var palette = map[string]color.RGBA{
	"direct":  {0x88, 0x88, 0x88, 0xff},
	"goproxy": {0x00, 0x7d, 0x9c, 0xff},
	"nginx":   {0x00, 0x96, 0x39, 0xff},
	"haproxy": {0x1f, 0x4e, 0x9c, 0xff},
	"caddy":   {0xe0, 0x8a, 0x00, 0xff},
	"mxedge":  {0xc0, 0x1f, 0x3a, 0xff},
	// mxedge-base: the same hue, lighter (before/after runs).
	"mxedge-base": {0xe8, 0x8a, 0x9a, 0xff},
}

type bar struct {
	label string
	value float64
}

type panel struct {
	title string
	unit  string
	bars  []bar
}

// plot writes a PNG of the proxies' CPU time per request by scenario and target (the
// main layout), GET requests/s in each layout, and memory per held /sync and per idle
// connection, plain and TLS.
func plot(rep *report, path string) error {
	var panels []panel
	lays := reportLayouts(rep)
	if len(lays) > 0 {
		main := lays[0].name()
		c := cells(rep, main, false)
		if len(c) == 0 {
			c = cells(rep, main, true)
		}
		for _, s := range scenarios {
			p := panel{title: fmt.Sprintf("CPU us per request: %s (%s)", s.name, main), unit: " us"}
			for _, t := range rep.Targets {
				if x, ok := c[t+"/"+s.name]; ok && x.cpu > 0 {
					p.bars = append(p.bars, bar{t, x.cpu})
				}
			}
			if len(p.bars) > 0 {
				panels = append(panels, p)
			}
		}
		for _, l := range lays {
			c := cells(rep, l.name(), false)
			if len(c) == 0 {
				c = cells(rep, l.name(), true)
			}
			p := panel{title: fmt.Sprintf("GET req/s (plain, %s layout)", l.name()), unit: "/s"}
			for _, t := range rep.Targets {
				if x, ok := c[t+"/get"]; ok {
					p.bars = append(p.bars, bar{t, x.rps})
				}
			}
			if len(p.bars) > 0 {
				panels = append(panels, p)
			}
		}
	}
	for _, k := range []struct{ kind, title string }{
		{"sync", "KB per held /sync, plain"}, {"sync-tls", "KB per held /sync, TLS"},
		{"idle", "KB per idle keep-alive, plain"}, {"idle-tls", "KB per idle keep-alive, TLS"},
	} {
		maxN := 0
		for _, h := range rep.Holds {
			if kind(h) == k.kind && h.N > maxN {
				maxN = h.N
			}
		}
		p := panel{title: fmt.Sprintf("%s (N=%d)", k.title, maxN), unit: " KB"}
		for _, h := range rep.Holds {
			if kind(h) == k.kind && h.N == maxN {
				p.bars = append(p.bars, bar{h.Target, h.PerConnB / 1000})
			}
		}
		if len(p.bars) > 0 {
			panels = append(panels, p)
		}
	}
	const w, pw, scale = 1240, 600, 2
	ph := 230
	for _, p := range panels {
		ph = max(ph, 28+len(p.bars)*30+20)
	}
	rows := (len(panels) + 1) / 2
	img := canvas{image.NewRGBA(image.Rect(0, 0, w, rows*ph+50))}
	img.rect(0, 0, w, rows*ph+50, color.White)
	black := color.RGBA{0x20, 0x20, 0x20, 0xff}
	img.text(14, 12, 3, "mxedge bench "+rep.Date, black)
	for i, p := range panels {
		x0 := 14 + (i%2)*(pw+20)
		y0 := 50 + (i/2)*ph
		img.text(x0, y0, scale, p.title, black)
		max := 0.0
		for _, b := range p.bars {
			if b.value > max {
				max = b.value
			}
		}
		const labelW, barH, gap = 150, 22, 8
		for j, b := range p.bars {
			y := y0 + 28 + j*(barH+gap)
			img.text(x0, y+4, scale, b.label, black)
			bw := 0
			if max > 0 {
				bw = int(b.value / max * float64(pw-labelW-120))
			}
			img.rect(x0+labelW, y, x0+labelW+bw, y+barH, palette[b.label])
			v := fmt.Sprintf("%.0f%s", b.value, p.unit)
			if b.value < 100 {
				v = fmt.Sprintf("%.1f%s", b.value, p.unit)
			}
			img.text(x0+labelW+bw+6, y+4, scale, v, black)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
