package value

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// WritePlots writes one SVG per variant into dir (created if missing):
// awareness_VARIANT.svg, awareness latency over the run. It returns the
// paths written.
func (c *Comparison) WritePlots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, m := range c.Measures() {
		var b bytes.Buffer
		if err := m.WritePlot(&b); err != nil {
			return paths, err
		}
		p := filepath.Join(dir, "awareness_"+string(m.Variant)+".svg")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// plotBucket is the width of one point of the plot in virtual time.
const plotBucket = 30 * time.Second

// WritePlot draws the measure's awareness latency over time as SVG: for
// every 30 s of write times the median and the worst latency, on a log
// scale from 1 ms to 1000 s, with faults as red bands. The measure must
// come from RunVariant or Compare in this process (samples are not in
// JSON).
func (m *Measure) WritePlot(w io.Writer) error {
	const (
		width, height  = 900, 360
		left, right    = 70, 20
		top, bottom    = 40, 50
		minLog, maxLog = -3.0, 3.0 // 1 ms .. 1000 s
	)
	end := m.end
	if end <= 0 {
		end = time.Minute
	}
	buckets := make([][]time.Duration, int(end/plotBucket)+1)
	for _, s := range m.samples {
		i := min(max(int(s.written.Sub(m.start)/plotBucket), 0), len(buckets)-1)
		buckets[i] = append(buckets[i], s.latency)
	}
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	x := func(d time.Duration) float64 { return float64(left) + pw*float64(d)/float64(end) }
	y := func(lat time.Duration) float64 {
		l := math.Log10(max(lat.Seconds(), 1e-3))
		l = min(max(l, minLog), maxLog)
		return float64(top) + ph*(maxLog-l)/(maxLog-minLog)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">awareness latency, %s (p50 %s, p99 %s, max %s; %d missed)</text>`+"\n",
		left, html.EscapeString(string(m.Variant)), fmtSecs(m.AwarenessP50), fmtSecs(m.AwarenessP99), fmtSecs(m.AwarenessMax), m.MissedCapsules)
	for _, f := range m.marks {
		x0, x1 := x(f.from), x(f.to)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="red" fill-opacity="0.25"><title>%s at %v</title></rect>`+"\n",
			x0, top, max(x1-x0, 1.5), ph, html.EscapeString(f.what), f.from)
	}
	for l := minLog; l <= maxLog; l++ {
		yy := y(time.Duration(math.Pow(10, l) * float64(time.Second)))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, yy, width-right, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, yy+4, fmtSecs(math.Pow(10, l)))
	}
	for mins := time.Duration(0); mins <= end; mins += 10 * time.Minute {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%dm</text>`+"\n", x(mins), height-bottom+18, int(mins/time.Minute))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">write time (virtual)</text>`+"\n", left+int(pw/2), height-12)
	line := func(pick func([]time.Duration) time.Duration, color, name string) {
		var pts []string
		for i, bk := range buckets {
			if len(bk) == 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(time.Duration(i)*plotBucket+plotBucket/2), y(pick(bk))))
		}
		if len(pts) == 0 {
			return
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`+"\n", color, joinSpace(pts), name)
	}
	for _, bk := range buckets {
		slices.Sort(bk)
	}
	line(func(s []time.Duration) time.Duration { return s[len(s)-1] }, "#d62728", "max")
	line(func(s []time.Duration) time.Duration { return pctDur(s, 50) }, "#1f77b4", "p50")
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#1f77b4">p50</text><text x="%d" y="%d" fill="#d62728">max</text><text x="%d" y="%d" fill="red">faults</text>`+"\n",
		width-right-150, top-6, width-right-110, top-6, width-right-70, top-6)
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func fmtSecs(s float64) string {
	switch {
	case s >= 1 && s == math.Trunc(s):
		return fmt.Sprintf("%.0fs", s)
	case s < 1:
		return fmt.Sprintf("%.3gms", s*1000)
	default:
		return fmt.Sprintf("%.3gs", s)
	}
}

func joinSpace(s []string) string {
	var b bytes.Buffer
	for i, p := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p)
	}
	return b.String()
}
