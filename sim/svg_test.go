package sim

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/color"
	"image/png"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cosnim/relays/relay"
)

// failedRun is the trace and frame log of the first of seeds 1..10 whose
// run fails with catch-up broken, so the picture has a violation to show.
func failedRun(t *testing.T) (trace, frames []byte) {
	t.Helper()
	for seed := uint64(1); seed <= 10; seed++ {
		sc := Generate(seed)
		sc.Failpoints = []string{relay.FailEmptySyncReply}
		var tr, fr bytes.Buffer
		if res := Run(sc, Options{Timeline: &tr, Frames: &fr}); len(res.Violations) > 0 {
			return tr.Bytes(), fr.Bytes()
		}
	}
	t.Fatal("no seed of 1..10 failed with broken catch-up")
	return nil, nil
}

func TestFrameLogLeavesTraceAlone(t *testing.T) {
	sc := Generate(7)
	var plain, tr, fr bytes.Buffer
	a := Run(sc, Options{Timeline: &plain})
	b := Run(sc, Options{Timeline: &tr, Frames: &fr})
	if a.TraceSHA256 != b.TraceSHA256 || !bytes.Equal(plain.Bytes(), tr.Bytes()) {
		t.Fatalf("trace %s with a frame log, %s without: the log must not change the run", b.TraceSHA256, a.TraceSHA256)
	}
	if !strings.Contains(fr.String(), " frame from=") || !strings.Contains(fr.String(), "type=Announce") {
		t.Fatalf("frame log names no Announce:\n%.400s", fr.String())
	}
}

func TestWriteSVG(t *testing.T) {
	trace, frames := failedRun(t)
	var pic bytes.Buffer
	if err := WriteSVG(&pic, bytes.NewReader(trace), SVGOptions{Frames: bytes.NewReader(frames)}); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(pic.Bytes()))
	counts := map[string]int{}
	var texts []string
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			counts[el.Name.Local]++
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if counts["svg"] != 1 || counts["line"] < 100 || counts["circle"] == 0 {
		t.Fatalf("picture has %v elements; want an svg with arrows and announce dots", counts)
	}
	all := strings.Join(texts, " ")
	for _, want := range []string{"relay", "c0-0", "VIOLATION", "heal", "Announce (", "Deliver (", "time", "fault"} {
		if !strings.Contains(all, want) {
			t.Errorf("picture does not show %q", want)
		}
	}
}

// render draws the run's picture for opt, renders it to PNG with
// rsvg-convert (a real renderer) and returns the image and its layout.
func render(t *testing.T, trace, frames []byte, opt SVGOptions) (image.Image, *svgLayout) {
	t.Helper()
	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		t.Skip("rsvg-convert not installed (Debian: apt-get install librsvg2-bin; .ci/run does)")
	}
	opt.Frames = bytes.NewReader(frames)
	var pic bytes.Buffer
	if err := WriteSVG(&pic, bytes.NewReader(trace), opt); err != nil {
		t.Fatal(err)
	}
	tl, err := readTimeline(bytes.NewReader(trace), bytes.NewReader(frames))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rsvg, "--format", "png")
	cmd.Stdin = &pic
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rsvg-convert: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return img, tl.layout(opt)
}

// TestSVGPicture renders the picture and checks what a reader sees: an
// axis across the plot, every lane's label inked, legend swatches in each
// frame type's color (and, zoomed, that color among the lanes), and as
// many separate fault
// and violation bands as there are faults and violations (overlapping
// bands would merge into fewer), each where the layout put it; zoomed to
// a window, only the faults that meet it.
func TestSVGPicture(t *testing.T) {
	trace, frames := failedRun(t)
	img, l := render(t, trace, frames, SVGOptions{})
	checkPicture(t, img, l, false)
	if len(l.bands) < 4 {
		t.Fatalf("%d bands; the run should show several faults", len(l.bands))
	}

	// Zoomed around the first fault that lasts: fewer bands, every one
	// meeting the window, the axis starting at the window.
	var from time.Duration
	for _, b := range l.bands {
		if b.end > b.start && !b.violation {
			from = time.Duration(b.start * 1e9)
			break
		}
	}
	win := SVGOptions{From: from, To: from + 2*time.Second}
	zimg, zl := render(t, trace, frames, win)
	checkPicture(t, zimg, zl, true)
	if len(zl.bands) == 0 || len(zl.bands) >= len(l.bands) {
		t.Errorf("window %v–%v shows %d of %d bands, want some, not all", win.From, win.To, len(zl.bands), len(l.bands))
	}
	if len(zl.ticks) == 0 || zl.ticks[0] < win.From.Seconds() || zl.ticks[len(zl.ticks)-1] > win.To.Seconds()+1e-9 {
		t.Errorf("window %v–%v has ticks %v", win.From, win.To, zl.ticks)
	}
}

// checkPicture checks img against its layout; with kinds, that every
// legend color shows among the lanes (a whole run's bursts of frames at
// one instant cover each other; a zoomed window does not).
func checkPicture(t *testing.T, img image.Image, l *svgLayout, kinds bool) {
	t.Helper()
	// Bands: connected regions of exactly the band color, one per band.
	for _, fill := range []string{bandFill, violFill} {
		var want []rect
		for _, b := range l.bands {
			if (fill == violFill) == b.violation {
				want = append(want, b.box)
			}
		}
		got := components(img, image.Rect(0, 0, img.Bounds().Max.X, int(l.axisY)), hexColor(fill))
		if len(got) != len(want) {
			t.Errorf("%s: %d bands in the picture, want %d (bands overlap or went missing)", fill, len(got), len(want))
			continue
		}
		for i, g := range got {
			if !inside(g, want) {
				t.Errorf("%s: band %d at %v lies in no band the layout placed", fill, i, g)
			}
		}
	}
	// The axis: dark along 95 % of the plot.
	ink := 0
	for x := int(l.x0); x < int(l.x1); x++ {
		if dark(img.At(x, int(l.axisY))) {
			ink++
		}
	}
	if float64(ink) < 0.95*(l.x1-l.x0) {
		t.Errorf("axis row %v: %d dark pixels over %v, want a line across the plot", l.axisY, ink, l.x1-l.x0)
	}
	// Lane labels are rendered text, left of the plot.
	for _, name := range l.tl.lanes {
		y := int(l.laneY(name))
		n := 0
		for x := int(l.x0) - 8 - int(svgCharW*float64(len(name))); x < int(l.x0)-8; x++ {
			for yy := y - 5; yy <= y+4; yy++ {
				if dark(img.At(x, yy)) {
					n++
				}
			}
		}
		if n < 8 {
			t.Errorf("lane %s: label has %d inked pixels, want text", name, n)
		}
	}
	// Legend swatches in the kind's color, and that color among the lanes.
	lanes := image.Rect(int(l.x0), int(l.lanesY), int(l.x1)+1, int(l.legendY)-8)
	for _, k := range l.kinds {
		r, c := l.legend[k], hexColor(kindColor(k))
		if got := img.At(int(r.x0+6), int(r.y0+6)); !near(got, c, 2) {
			t.Errorf("legend %s swatch is %v, want %v", k, got, c)
		}
		if kinds && !anyPixel(img, lanes, c) {
			t.Errorf("no %s (%v) drawn among the lanes", k, c)
		}
	}
}

// components lists the bounding boxes of the 4-connected regions of
// pixels of exactly c within area at least a band high (the counters of
// glyphs drawn on a band are smaller).
func components(img image.Image, area image.Rectangle, c color.RGBA) []rect {
	b := area.Intersect(img.Bounds())
	seen := make([]bool, b.Dx()*b.Dy())
	idx := func(x, y int) int { return (y-b.Min.Y)*b.Dx() + x - b.Min.X }
	var out []rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if seen[idx(x, y)] || !near(img.At(x, y), c, 0) {
				continue
			}
			box := rect{float64(x), float64(y), float64(x), float64(y)}
			stack := []image.Point{{x, y}}
			seen[idx(x, y)] = true
			for len(stack) > 0 {
				p := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				box.x0, box.y0 = min(box.x0, float64(p.X)), min(box.y0, float64(p.Y))
				box.x1, box.y1 = max(box.x1, float64(p.X)), max(box.y1, float64(p.Y))
				for _, q := range []image.Point{{p.X + 1, p.Y}, {p.X - 1, p.Y}, {p.X, p.Y + 1}, {p.X, p.Y - 1}} {
					if q.In(b) && !seen[idx(q.X, q.Y)] && near(img.At(q.X, q.Y), c, 0) {
						seen[idx(q.X, q.Y)] = true
						stack = append(stack, q)
					}
				}
			}
			if box.y1-box.y0+1 >= svgTrackH-2 {
				out = append(out, box)
			}
		}
	}
	return out
}

// inside reports whether g lies within one of boxes (a pixel of slack).
func inside(g rect, boxes []rect) bool {
	for _, w := range boxes {
		if g.x0 >= w.x0-1 && g.y0 >= w.y0-1 && g.x1 <= w.x1+1 && g.y1 <= w.y1+1 {
			return true
		}
	}
	return false
}

func anyPixel(img image.Image, r image.Rectangle, c color.RGBA) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if near(img.At(x, y), c, 6) {
				return true
			}
		}
	}
	return false
}

func dark(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 < 110 && g>>8 < 110 && b>>8 < 110
}

func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) bool { v := int(x>>8) - int(y); return v <= tol && v >= -tol }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

func hexColor(s string) color.RGBA {
	var c color.RGBA
	c.A = 255
	for i, p := range []*uint8{&c.R, &c.G, &c.B} {
		var v uint8
		for _, ch := range s[1+2*i : 3+2*i] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= uint8(ch - '0')
			default:
				v |= uint8(ch-'a') + 10
			}
		}
		*p = v
	}
	return c
}
