package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
)

// WriteSVG draws a trace (as written to Options.Timeline) as a sequence
// picture: one lane per node, time flowing down, an arrow per delivery,
// faults as red bands across all lanes and violations in red text.
// Timer ticks are left out; at most maxArrows deliveries are drawn.
func WriteSVG(w io.Writer, trace io.Reader) error {
	const (
		maxArrows = 5000
		laneGap   = 110
		top       = 40
		pxPerSec  = 24.0
	)
	type mark struct {
		t     float64
		kind  string // arrow, fault, violation, announce, down
		from  string
		to    string
		label string
	}
	var marks []mark
	lanes := map[string]int{}
	var order []string
	lane := func(name string) {
		if _, ok := lanes[name]; !ok {
			lanes[name] = len(order)
			order = append(order, name)
		}
	}
	lane(relayName)
	arrows := 0
	end := 0.0
	sc := bufio.NewScanner(trace)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !strings.HasPrefix(f[0], "t=") {
			continue
		}
		t, err := strconv.ParseFloat(strings.TrimPrefix(f[0], "t="), 64)
		if err != nil {
			continue
		}
		end = max(end, t)
		who, what := f[1], f[2]
		switch {
		case who == "sim" && what == "fault":
			marks = append(marks, mark{t: t, kind: "fault", label: strings.Join(f[3:], " ")})
		case who == "sim" && what == "VIOLATION":
			marks = append(marks, mark{t: t, kind: "violation", label: strings.Join(f[3:], " ")})
		case who == "sim" && what == "announce" && len(f) >= 5:
			lane(f[3])
			marks = append(marks, mark{t: t, kind: "announce", from: f[3], label: f[4]})
		case who == "sim" && what == "heal:":
			marks = append(marks, mark{t: t, kind: "heal", label: "heal"})
		case what == "data" && arrows < maxArrows:
			for _, kv := range f[3:] {
				if from, ok := strings.CutPrefix(kv, "from="); ok {
					lane(who)
					lane(from)
					marks = append(marks, mark{t: t, kind: "arrow", from: from, to: who})
					arrows++
				}
			}
		case what == "crash" || (what == "closed" && len(f) > 4):
			lane(who)
			marks = append(marks, mark{t: t, kind: "down", from: who, label: strings.Join(f[2:], " ")})
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	x := func(name string) float64 { return float64(60 + lanes[name]*laneGap) }
	y := func(t float64) float64 { return top + t*pxPerSec }
	width := 120 + len(order)*laneGap + 400
	height := int(y(end)) + 40
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="10">`+"\n", width, height)
	fmt.Fprintln(bw, `<defs><marker id="a" markerWidth="6" markerHeight="6" refX="6" refY="3" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#46f"/></marker></defs>`)
	for _, name := range order {
		fmt.Fprintf(bw, `<text x="%.0f" y="20" text-anchor="middle" font-weight="bold">%s</text>`+"\n", x(name), html.EscapeString(name))
		fmt.Fprintf(bw, `<line x1="%.0f" y1="28" x2="%.0f" y2="%d" stroke="#bbb"/>`+"\n", x(name), x(name), height-10)
	}
	right := float64(60 + len(order)*laneGap)
	for _, m := range marks {
		switch m.kind {
		case "arrow":
			fmt.Fprintf(bw, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#46f" stroke-width="0.6" marker-end="url(#a)"/>`+"\n", x(m.from), y(m.t)-2, x(m.to), y(m.t))
		case "fault", "heal":
			color := "#e33"
			if m.kind == "heal" {
				color = "#2a2"
			}
			fmt.Fprintf(bw, `<line x1="40" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s" stroke-dasharray="4 2"/><text x="%.0f" y="%.1f" fill="%s">%.3fs %s</text>`+"\n",
				y(m.t), right, y(m.t), color, right+4, y(m.t)+3, color, m.t, html.EscapeString(m.label))
		case "violation":
			fmt.Fprintf(bw, `<text x="40" y="%.1f" fill="#c00" font-weight="bold">VIOLATION %s</text>`+"\n", y(m.t), html.EscapeString(m.label))
		case "announce":
			fmt.Fprintf(bw, `<circle cx="%.0f" cy="%.1f" r="3" fill="#0a0"><title>%.6fs announce %s</title></circle>`+"\n", x(m.from), y(m.t), m.t, html.EscapeString(m.label))
		case "down":
			fmt.Fprintf(bw, `<text x="%.0f" y="%.1f" fill="#c60" text-anchor="middle">×<title>%.6fs %s</title></text>`+"\n", x(m.from), y(m.t)+3, m.t, html.EscapeString(m.label))
		}
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}
