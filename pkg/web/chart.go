package web

import (
	"cmp"
	"html/template"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/banwatch/banwatch/pkg/store"
)

// A chart is a stacked bar chart of counts per hour and key (bans per
// jail, events per kind) over the last Window, as inline SVG: one bar per
// UTC hour, placed at its local time, with a segment per key. Each
// segment carries its hour, key and count as data attributes and in a
// <title> the browser shows on hover.
type chart struct {
	ID     string // the SVG's id, and a prefix for its parts'
	Title  string // "Bans per hour"
	Unit   string // "bans": the titles' unit, plural
	Total  int
	Since  time.Time // the first bar's hour (UTC)
	Hours  int       // the number of bars
	Bars   []bar     // the hours with counts, oldest first
	Series []series  // the legend, largest first
	YTicks []tick
	XTicks []tick // hour ticks
	Days   []tick // day labels, at the middle of each local day
	Seps   []tick // day separators, at local midnights
	// Geometry, in SVG user units.
	Width, Height, Left, Top, PlotW, PlotH, Slot, BarW float64
}

// bar is one hour's stack.
type bar struct {
	Hour  string // RFC 3339, UTC
	Label string // the local time, "Sat 28 Nov 14:00"
	Total int
	X     float64
	Segs  []seg
}

// seg is one key's part of a bar.
type seg struct {
	Key   string
	N     int
	Color string
	Y, H  float64
	Title string // "Sat 28 Nov 14:00 postfix: 37 bans"
	// Attrs are the rect's attributes made of numbers and constants only
	// (position, size, colour, hour), written here once rather than
	// through an escaper each: a week's chart has a thousand segments.
	// The key and the title, text, go through the template.
	Attrs template.HTMLAttr
}

// series is one key of the legend.
type series struct {
	Key   string
	Keys  []string // for "other": the keys folded into it
	Color string
	Total int
}

// tick is a label or line on an axis.
type tick struct {
	X, Y  float64
	Label string
}

// palette is the series' colours (Tableau 10, which stays apart for the
// common colour blindnesses), in the order of their totals; other is the
// colour of the keys beyond it, folded into one series.
var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}

const (
	otherColor = "#bab0ac"
	otherKey   = "other"
)

// Chart geometry, in SVG user units: the SVG scales to the page's width.
const (
	slotW   = 5.0 // an hour
	barW    = 4.0
	leftW   = 46.0 // the y axis' labels
	rightW  = 8.0
	topH    = 10.0
	plotH   = 170.0
	bottomH = 36.0 // hour labels, then day labels
)

// buildChart lays out counts (ordered by hour, then key) of the hours
// since since (a UTC hour start) up to and including until's hour, with
// their times shown in loc.
func buildChart(id, title, unit string, counts []store.HourCount, since, until time.Time, loc *time.Location) *chart {
	hours := int(until.UTC().Truncate(time.Hour).Sub(since)/time.Hour) + 1
	c := &chart{ID: id, Title: title, Unit: unit, Since: since, Hours: hours,
		Left: leftW, Top: topH, PlotW: float64(hours) * slotW, PlotH: plotH, Slot: slotW, BarW: barW}
	c.Width = leftW + c.PlotW + rightW
	c.Height = topH + plotH + bottomH

	// The series, largest first; beyond the palette, the rest is "other".
	totals := map[string]int{}
	for _, h := range counts {
		if i := c.index(h.Hour); i >= 0 && h.N > 0 {
			totals[h.Key] += h.N
		}
	}
	for k, n := range totals {
		c.Series = append(c.Series, series{Key: k, Total: n})
		c.Total += n
	}
	slices.SortFunc(c.Series, func(a, b series) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Key, b.Key))
	})
	if len(c.Series) > len(palette)+1 {
		other := series{Key: otherKey, Color: otherColor}
		for _, s := range c.Series[len(palette):] {
			other.Total += s.Total
			other.Keys = append(other.Keys, s.Key)
		}
		c.Series = append(c.Series[:len(palette)], other)
	}
	order := map[string]int{}
	for i := range c.Series {
		if c.Series[i].Color == "" {
			c.Series[i].Color = palette[i]
		}
		order[c.Series[i].Key] = i
		for _, k := range c.Series[i].Keys {
			order[k] = i
		}
	}

	// The counts per hour and series.
	perHour := map[int][]int{}
	peak := 0
	for _, h := range counts {
		i := c.index(h.Hour)
		if i < 0 || h.N <= 0 {
			continue
		}
		row := perHour[i]
		if row == nil {
			row = make([]int, len(c.Series))
			perHour[i] = row
		}
		row[order[h.Key]] += h.N
	}
	for _, row := range perHour {
		sum := 0
		for _, n := range row {
			sum += n
		}
		peak = max(peak, sum)
	}
	yMax, step := scale(peak)
	for v := 0; v <= yMax; v += step {
		c.YTicks = append(c.YTicks, tick{X: leftW - 4, Y: c.y(float64(v), yMax), Label: thousands(v)})
	}

	idx := make([]int, 0, len(perHour))
	for i := range perHour {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		row := perHour[i]
		start := since.Add(time.Duration(i) * time.Hour)
		b := bar{Hour: start.Format(time.RFC3339), Label: start.In(loc).Format("Mon 2 Jan 15:04"), X: leftW + float64(i)*slotW + (slotW-barW)/2}
		base := 0
		for si, n := range row {
			if n == 0 {
				continue
			}
			top := c.y(float64(base+n), yMax)
			s := seg{Key: c.Series[si].Key, N: n, Color: c.Series[si].Color, Y: top, H: c.y(float64(base), yMax) - top}
			s.Title = b.Label + " " + s.Key + ": " + count(n, unit)
			s.Attrs = template.HTMLAttr(`x="` + px(b.X) + `" y="` + px(s.Y) + `" width="` + px(barW) + `" height="` + px(s.H) +
				`" fill="` + s.Color + `" data-hour="` + b.Hour + `"`)
			b.Segs = append(b.Segs, s)
			base += n
		}
		b.Total = base
		c.Bars = append(c.Bars, b)
	}
	c.axis(loc)
	return c
}

// index returns the bar of the hour starting at h, or -1 outside the
// chart.
func (c *chart) index(h time.Time) int {
	if h.Before(c.Since) {
		return -1
	}
	if i := int(h.Sub(c.Since) / time.Hour); i < c.Hours {
		return i
	}
	return -1
}

// y is the SVG ordinate of the value v on a scale to yMax.
func (c *chart) y(v float64, yMax int) float64 {
	return topH + plotH - v/float64(yMax)*plotH
}

// axis lays out the x axis: a tick every 6 local hours with its hour, and
// each local day's name under its middle, between separators at the local
// midnights.
func (c *chart) axis(loc *time.Location) {
	x := func(i int) float64 { return leftW + float64(i)*slotW }
	dayStart := 0
	day := func(from, to int) {
		// A day is named when at least a quarter of it is on the chart.
		if to-from >= 6 {
			t := c.Since.Add(time.Duration(from) * time.Hour).In(loc)
			c.Days = append(c.Days, tick{X: (x(from) + x(to)) / 2, Y: topH + plotH + 30, Label: t.Format("Mon 2 Jan")})
		}
	}
	prev := c.Since.In(loc)
	for i := 0; i < c.Hours; i++ {
		t := c.Since.Add(time.Duration(i) * time.Hour).In(loc)
		if i > 0 && t.YearDay() != prev.YearDay() {
			c.Seps = append(c.Seps, tick{X: x(i)})
			day(dayStart, i)
			dayStart = i
		}
		if t.Hour()%6 == 0 && t.Hour() != 0 {
			c.XTicks = append(c.XTicks, tick{X: x(i), Y: topH + plotH + 14, Label: t.Format("15:04")})
		}
		prev = t
	}
	day(dayStart, c.Hours)
}

// scale returns the top of the y axis for a peak and the step of its
// ticks: steps of 1, 2 or 5 times a power of ten, at most 5 of them.
func scale(peak int) (yMax, step int) {
	if peak <= 0 {
		return 1, 1
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			step = m * p
			if n := (peak + step - 1) / step; n <= 5 {
				return n * step, step
			}
		}
	}
}

// px writes an SVG coordinate: at most two decimals.
func px(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// count writes n of unit: "1 ban", "37 bans", "1,234 events".
func count(n int, unit string) string {
	if n == 1 && len(unit) > 1 && unit[len(unit)-1] == 's' {
		unit = unit[:len(unit)-1]
	}
	return thousands(n) + " " + unit
}

// thousands writes n with a comma between thousands: 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
