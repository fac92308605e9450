package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cosnim/relays/netsim"
	"github.com/cosnim/relays/wire"
)

// SVGOptions selects what WriteSVG draws.
type SVGOptions struct {
	// Frames is the frame log of the run (Options.Frames); with it,
	// arrows are frames colored by type, without it deliveries of bytes.
	Frames io.Reader
	// From and To zoom to a window of the run; To 0 means its end.
	From, To time.Duration
}

// Picture geometry, in pixels.
const (
	svgWidth   = 1400
	svgLeft    = 120 // lane labels
	svgRight   = 24
	svgTrackH  = 14 // one row of fault bands
	svgTrackG  = 4  // gap between rows and between bands of a row
	svgLaneH   = 22
	svgCharW   = 6.2 // monospace at font-size 10, rounded up
	svgMaxLbl  = 48  // characters of a band label
	svgMaxArr  = 8000
	bandFill   = "#f3c4c4"
	violFill   = "#d01010"
	axisStroke = "#333333"
)

// WriteSVG draws a trace (as written to Options.Timeline) as a timeline:
// a labeled time axis, one labeled lane per node with time flowing right,
// an arrow per frame (or delivery) from sender to receiver colored by
// frame type, announces as dots, crashes and closes as crosses, faults and
// violations as labeled bands packed in rows so that none overlap, and a
// legend of every color and mark used. At most svgMaxArr arrows are drawn.
func WriteSVG(w io.Writer, trace io.Reader, opt SVGOptions) error {
	tl, err := readTimeline(trace, opt.Frames)
	if err != nil {
		return err
	}
	return tl.layout(opt).draw(w)
}

// timeline is what a trace and frame log say, in seconds.
type timeline struct {
	lanes  []string
	laneOf map[string]int
	arrows []arrow
	bands  []band
	dots   []point // announces
	downs  []point // crashes and closes
	end    float64
}

type arrow struct {
	t        float64
	from, to string
	kind     string
}

type band struct {
	start, end float64
	label      string
	violation  bool
}

type point struct {
	t     float64
	lane  string
	label string
}

// parseLine splits a "t=SECONDS WHO WHAT ..." line.
func parseLine(line string) (t float64, f []string, ok bool) {
	f = strings.Fields(line)
	if len(f) < 3 || !strings.HasPrefix(f[0], "t=") {
		return 0, nil, false
	}
	t, err := strconv.ParseFloat(strings.TrimPrefix(f[0], "t="), 64)
	return t, f, err == nil
}

func readTimeline(trace, frames io.Reader) (*timeline, error) {
	tl := &timeline{laneOf: map[string]int{}}
	tl.lane(relayName)
	heal := math.Inf(1)
	var open []int // bands lasting until the heal
	err := scanLines(trace, func(t float64, f []string) {
		tl.end = max(tl.end, t)
		who, what := f[1], f[2]
		switch {
		case who == "sim" && what == "fault" && len(f) >= 5:
			tl.fault(t, f[3:], &open)
			if FaultKind(f[3]) == FaultHeal {
				heal = min(heal, t)
			}
		case who == "sim" && what == "heal:":
			heal = min(heal, t)
		case who == "sim" && what == "VIOLATION":
			tl.bands = append(tl.bands, band{start: t, end: t, label: "VIOLATION " + strings.Join(f[3:], " "), violation: true})
		case who == "sim" && what == "announce" && len(f) >= 5:
			tl.lane(f[3])
			tl.dots = append(tl.dots, point{t: t, lane: f[3], label: "announce " + f[4]})
		case what == "data" && frames == nil:
			for _, kv := range f[3:] {
				if from, ok := strings.CutPrefix(kv, "from="); ok {
					tl.arrow(t, from, who, "bytes")
				}
			}
		case what == "crash" || (what == "closed" && len(f) > 4):
			tl.lane(who)
			tl.downs = append(tl.downs, point{t: t, lane: who, label: strings.Join(f[2:], " ")})
		}
	})
	if err != nil {
		return nil, err
	}
	for _, i := range open {
		tl.bands[i].end = max(tl.bands[i].start, min(heal, tl.end))
	}
	if frames != nil {
		err = scanLines(frames, func(t float64, f []string) {
			from, _ := strings.CutPrefix(f[3], "from=")
			kind, _ := strings.CutPrefix(f[4], "type=")
			tl.arrow(t, from, f[1], kind)
		})
	}
	return tl, err
}

func scanLines(r io.Reader, fn func(t float64, f []string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if t, f, ok := parseLine(sc.Text()); ok {
			fn(t, f)
		}
	}
	return sc.Err()
}

func (tl *timeline) lane(name string) {
	if _, ok := tl.laneOf[name]; !ok {
		tl.laneOf[name] = len(tl.lanes)
		tl.lanes = append(tl.lanes, name)
	}
}

// fault records "KIND [TARGETS...] DURATION" as a band.
func (tl *timeline) fault(t float64, f []string, open *[]int) {
	kind := FaultKind(f[0])
	d, err := time.ParseDuration(f[len(f)-1])
	if err != nil {
		d = 0
	}
	label := strings.Join(f[:len(f)-1], " ")
	if d > 0 {
		label += " " + f[len(f)-1]
	}
	if d == 0 && lastsUntilHeal(kind) {
		*open = append(*open, len(tl.bands))
	}
	tl.bands = append(tl.bands, band{start: t, end: t + d.Seconds(), label: label})
}

func (tl *timeline) arrow(t float64, from, to, kind string) {
	tl.end = max(tl.end, t)
	tl.lane(to)
	tl.lane(from)
	if len(tl.arrows) < svgMaxArr {
		tl.arrows = append(tl.arrows, arrow{t: t, from: from, to: to, kind: kind})
	}
}

// rect is an axis-aligned box.
type rect struct{ x0, y0, x1, y1 float64 }

// svgLayout is a timeline placed on the page; tests read its geometry.
type svgLayout struct {
	tl           *timeline
	from, to     float64
	x0, x1       float64 // the plot's left and right edges
	titleY       float64
	tracksY      float64
	bands        []placedBand
	axisY        float64
	lanesY       float64
	legendY      float64
	legend       map[string]rect // swatch per arrow kind in the window
	kinds        []string        // arrow kinds in the window, first seen first
	count        map[string]int  // arrows per kind in the window
	height       float64
	ticks        []float64
	tickLabelFmt func(float64) string
}

type placedBand struct {
	band
	box rect // the band itself; its label starts inside it
}

func (tl *timeline) layout(opt SVGOptions) *svgLayout {
	l := &svgLayout{tl: tl, from: opt.From.Seconds(), to: opt.To.Seconds(), x0: svgLeft, x1: svgWidth - svgRight}
	if l.to <= l.from {
		l.to = max(tl.end, l.from+1e-3)
	}
	l.titleY = 16
	l.tracksY = 28
	rows := l.placeBands()
	l.axisY = l.tracksY + float64(rows)*(svgTrackH+svgTrackG) + 10
	l.ticks, l.tickLabelFmt = axisTicks(l.from, l.to)
	l.lanesY = l.axisY + 22
	l.legendY = l.lanesY + float64(len(tl.lanes))*svgLaneH + 16
	l.legend, l.count = map[string]rect{}, map[string]int{}
	for _, a := range tl.arrows {
		if l.inWindow(a.t) {
			if l.count[a.kind] == 0 {
				l.kinds = append(l.kinds, a.kind)
			}
			l.count[a.kind]++
		}
	}
	x, y := l.x0, l.legendY
	for _, k := range l.kinds {
		w := 14 + svgCharW*float64(len(k)+8) + 16
		if x+w > l.x1 {
			x, y = l.x0, y+18
		}
		l.legend[k] = rect{x, y, x + 12, y + 12}
		x += w
	}
	l.height = y + 18 + 18 + 10 // the kinds' row(s), then the marks' row
	return l
}

// x maps a time in the window onto the page.
func (l *svgLayout) x(t float64) float64 { return l.x0 + (t-l.from)/(l.to-l.from)*(l.x1-l.x0) }

func (l *svgLayout) laneY(name string) float64 {
	return l.lanesY + float64(l.tl.laneOf[name])*svgLaneH + svgLaneH/2
}

func (l *svgLayout) inWindow(t float64) bool { return t >= l.from && t <= l.to }

// placeBands packs the bands that meet the window into rows, first fit:
// a band and its label take [x(start), max(x(end), label end)] plus a gap,
// and no two bands of a row share a pixel. It returns the number of rows.
func (l *svgLayout) placeBands() int {
	var rowEnd []float64
	for _, b := range l.tl.bands {
		if b.end < l.from || b.start > l.to {
			continue
		}
		bx0 := l.x(max(b.start, l.from))
		bx1 := max(l.x(min(b.end, l.to)), bx0+3)
		// A label fits svgMaxLbl characters and the page's right edge.
		fit := min(svgMaxLbl, int((svgWidth-bx0-4)/svgCharW))
		if label := []rune(b.label); len(label) > fit {
			b.label = string(label[:max(fit-1, 0)]) + "…"
		}
		label := b.label
		taken := max(bx1, bx0+2+svgCharW*float64(len([]rune(label)))) + svgTrackG
		row := 0
		for row < len(rowEnd) && rowEnd[row] > bx0 {
			row++
		}
		if row == len(rowEnd) {
			rowEnd = append(rowEnd, 0)
		}
		rowEnd[row] = taken
		y := l.tracksY + float64(row)*(svgTrackH+svgTrackG)
		l.bands = append(l.bands, placedBand{band: b, box: rect{bx0, y, bx1, y + svgTrackH}})
	}
	return len(rowEnd)
}

// axisTicks picks about ten round ticks (1, 2 or 5 times a power of ten
// seconds) over [from, to] and how to print them.
func axisTicks(from, to float64) ([]float64, func(float64) string) {
	raw := (to - from) / 10
	step := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{2, 5, 10} {
		if step >= raw {
			break
		}
		step = math.Pow(10, math.Floor(math.Log10(raw))) * m
	}
	var ticks []float64
	for t := math.Ceil(from/step) * step; t <= to+step*1e-9; t += step {
		ticks = append(ticks, t)
	}
	fmtTick := func(t float64) string {
		d := time.Duration(math.Round(t * 1e9))
		return d.Round(time.Duration(step * 1e9 / 10)).String()
	}
	return ticks, fmtTick
}

// kindColor gives each frame type a color of its own, by its wire type
// number; other kinds (bytes, garbage) are gray.
func kindColor(kind string) string {
	palette := [...]string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
		"#bcbd22", "#7f7fff", "#ff9896", "#98df8a", "#c49c94", "#aec7e8", "#393b79", "#637939"}
	for t := range 256 {
		if wire.Type(t).String() == kind {
			return palette[t%len(palette)]
		}
	}
	return "#8a8a8a"
}

func (l *svgLayout) draw(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" font-family="DejaVu Sans Mono, monospace" font-size="10">`+"\n", svgWidth, l.height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(bw, `<text x="8" y="%.0f" font-weight="bold">timeline %s – %s</text>`+"\n", l.titleY, l.tickLabelFmt(l.from), l.tickLabelFmt(l.to))
	fmt.Fprintln(bw, "<defs>")
	for _, k := range l.kinds {
		fmt.Fprintf(bw, `<marker id="m-%s" markerUnits="userSpaceOnUse" markerWidth="7" markerHeight="7" refX="7" refY="3.5" orient="auto"><path d="M0,0 L7,3.5 L0,7 z" fill="%s"/></marker>`+"\n", html.EscapeString(k), kindColor(k))
	}
	fmt.Fprintln(bw, "</defs>")
	l.drawBands(bw)
	l.drawAxisAndLanes(bw)
	l.drawMarks(bw)
	l.drawLegend(bw)
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

func (l *svgLayout) drawBands(bw *bufio.Writer) {
	for _, b := range l.bands {
		fill, ink := bandFill, "#222222"
		if b.violation {
			fill, ink = violFill, "#ffffff"
		}
		fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%.6fs %s</title></rect>`+"\n",
			b.box.x0, b.box.y0, b.box.x1-b.box.x0, svgTrackH, fill, b.start, html.EscapeString(b.label))
		if b.violation && b.box.x1-b.box.x0 < 3+svgCharW*float64(len(b.label)) {
			ink = "#a00000" // the label runs past the band, onto white
		}
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", b.box.x0+2, b.box.y0+10.5, ink, html.EscapeString(b.label))
	}
}

func (l *svgLayout) drawAxisAndLanes(bw *bufio.Writer) {
	bottom := l.lanesY + float64(len(l.tl.lanes))*svgLaneH
	fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", l.x0, l.axisY, l.x1, l.axisY, axisStroke)
	for _, t := range l.ticks {
		x := l.x(t)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, l.axisY, x, l.axisY+5, axisStroke)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eeeeee"/>`+"\n", x, l.lanesY, x, bottom)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, l.axisY+16, l.tickLabelFmt(t))
	}
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555555">time</text>`+"\n", l.x0-8, l.axisY+4)
	for _, name := range l.tl.lanes {
		y := l.laneY(name)
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" text-anchor="end" font-weight="bold">%s</text>`+"\n", l.x0-8, y+3.5, html.EscapeString(name))
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#cccccc"/>`+"\n", l.x0, y, l.x1, y)
	}
}

func (l *svgLayout) drawMarks(bw *bufio.Writer) {
	// Rare kinds last, on top: a Drain is not hidden under Pongs.
	order := make([]int, 0, len(l.tl.arrows))
	for i, a := range l.tl.arrows {
		if l.inWindow(a.t) {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return l.count[l.tl.arrows[j].kind] - l.count[l.tl.arrows[i].kind]
	})
	for _, i := range order {
		a := l.tl.arrows[i]
		x := l.x(a.t)
		fmt.Fprintf(bw, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="0.8" marker-end="url(#m-%s)"/>`+"\n",
			x-1.5, l.laneY(a.from), x, l.laneY(a.to), kindColor(a.kind), html.EscapeString(a.kind))
	}
	for _, p := range l.tl.dots {
		if l.inWindow(p.t) {
			fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="3" fill="#00a000"><title>%.6fs %s</title></circle>`+"\n", l.x(p.t), l.laneY(p.lane), p.t, html.EscapeString(p.label))
		}
	}
	for _, p := range l.tl.downs {
		if l.inWindow(p.t) {
			fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" fill="#cc6600" text-anchor="middle" font-size="13">×<title>%.6fs %s</title></text>`+"\n", l.x(p.t), l.laneY(p.lane)+4, p.t, html.EscapeString(p.label))
		}
	}
}

func (l *svgLayout) drawLegend(bw *bufio.Writer) {
	for _, k := range l.kinds {
		r := l.legend[k]
		fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f">%s (%d)</text>`+"\n",
			r.x0, r.y0, kindColor(k), r.x1+4, r.y0+10, html.EscapeString(k), l.count[k])
	}
	y := l.height - 28
	fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="24" height="12" fill="%s"/><text x="%.1f" y="%.1f">fault</text>`+"\n", l.x0, y, bandFill, l.x0+28, y+10)
	fmt.Fprintf(bw, `<rect x="%.1f" y="%.1f" width="24" height="12" fill="%s"/><text x="%.1f" y="%.1f">violation</text>`+"\n", l.x0+80, y, violFill, l.x0+108, y+10)
	fmt.Fprintf(bw, `<circle cx="%.1f" cy="%.1f" r="3" fill="#00a000"/><text x="%.1f" y="%.1f">announce</text>`+"\n", l.x0+186, y+6, l.x0+194, y+10)
	fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" fill="#cc6600" font-size="13">×</text><text x="%.1f" y="%.1f">crash / close</text>`+"\n", l.x0+262, y+10, l.x0+274, y+10)
}

// logFrames writes one line per whole frame the network delivers to w:
// "t=SECONDS TO frame from=FROM type=TYPE" (garbage for bytes that do not
// frame). It is not part of the trace and does not change the run.
func logFrames(n *netsim.Network, w io.Writer) {
	if w == nil {
		return
	}
	type dir struct {
		conn uint64
		to   string
	}
	readers := map[dir]*wire.Reader{} // looked up by key only
	n.SetDeliverHook(func(at time.Duration, conn uint64, from, to string, b []byte) {
		r := readers[dir{conn, to}]
		if r == nil {
			r = &wire.Reader{Max: 1 << 24}
			readers[dir{conn, to}] = r
		}
		line := func(kind string) {
			fmt.Fprintf(w, "t=%s %s frame from=%s type=%s\n", stamp(at), to, from, kind)
		}
		if err := r.Feed(b, func(t wire.Type, _ []byte) error { line(t.String()); return nil }); err != nil {
			line("garbage")
			r.Reset()
		}
	})
}
