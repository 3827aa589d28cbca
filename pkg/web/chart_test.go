package web

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/store"
)

func TestScale(t *testing.T) {
	cases := []struct{ peak, yMax, step int }{
		{0, 1, 1}, {1, 1, 1}, {4, 4, 1}, {5, 5, 1}, {6, 6, 2}, {9, 10, 2}, {11, 15, 5}, {26, 30, 10},
		{37, 40, 10}, {99, 100, 20}, {101, 150, 50}, {999, 1000, 200}, {1234, 1500, 500}, {1_000_000, 1_000_000, 200_000},
	}
	for _, c := range cases {
		if yMax, step := scale(c.peak); yMax != c.yMax || step != c.step {
			t.Errorf("scale(%d) = %d, %d; want %d, %d", c.peak, yMax, step, c.yMax, c.step)
		}
	}
}

func TestFormats(t *testing.T) {
	cases := []struct{ got, want string }{
		{thousands(0), "0"}, {thousands(999), "999"}, {thousands(1000), "1,000"}, {thousands(1234567), "1,234,567"},
		{thousands(-12345), "-12,345"},
		{count(1, "bans"), "1 ban"}, {count(0, "bans"), "0 bans"}, {count(1500, "events"), "1,500 events"},
		{duration(7 * 24 * time.Hour), "7d"}, {duration(3*24*time.Hour + 4*time.Hour + 5*time.Minute), "3d 4h"},
		{duration(90 * time.Minute), "1h 30m"}, {duration(45 * time.Second), "45s"}, {duration(-time.Hour), "0s"},
		{duration(24*time.Hour + 10*time.Minute), "1d 10m"},
		{px(12.345), "12.35"}, {px(10), "10"}, {px(0.1 + 0.2), "0.3"},
		{zoneLabel(now.In(paris), "Europe/Paris"), "CET, UTC+01:00, Europe/Paris"},
		{zoneLabel(now.In(time.UTC), "Etc/UTC"), "UTC"}, {zoneLabel(now.In(time.UTC), ""), "UTC"},
		{zoneLabel(now.In(time.FixedZone("IST", 19800)), "Asia/Kolkata"), "IST, UTC+05:30, Asia/Kolkata"},
		{zoneLabel(now.In(time.FixedZone("", -3*3600)), ""), "-0300, UTC-03:00"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// The bars stand at their local time: across the end of summer time a
// local day has 25 hours, and its separators are at local midnights.
func TestChartLocalDays(t *testing.T) {
	// Paris leaves summer time on Sunday 25 October 2026 at 01:00 UTC.
	until := time.Date(2026, 10, 27, 12, 30, 0, 0, time.UTC)
	since := until.Truncate(time.Hour).Add(time.Hour - Window)
	c := buildChart("bans", "Bans", "bans", []store.HourCount{
		{Hour: time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC), Key: "postfix", N: 1}, // Sun 00:00 CEST
		{Hour: time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC), Key: "postfix", N: 2}, // Mon 00:00 CET
		{Hour: time.Date(2026, 10, 27, 12, 0, 0, 0, time.UTC), Key: "postfix", N: 4}, // the last bar
		{Hour: since.Add(-time.Hour), Key: "postfix", N: 100},                        // before the first
	}, since, until, paris)
	if c.Hours != 168 || c.Total != 7 {
		t.Fatalf("%d hours, total %d; want 168, 7", c.Hours, c.Total)
	}
	var titles []string
	for _, b := range c.Bars {
		titles = append(titles, b.Segs[0].Title)
	}
	want := []string{"Sun 25 Oct 00:00 postfix: 1 ban", "Mon 26 Oct 00:00 postfix: 2 bans", "Tue 27 Oct 13:00 postfix: 4 bans"}
	if !slices.Equal(titles, want) {
		t.Errorf("titles %q, want %q", titles, want)
	}
	// Separators at the local midnights: Sunday's day is 25 hours long.
	var at []int
	for _, s := range c.Seps {
		at = append(at, int((s.X-leftW)/slotW))
	}
	first := int(time.Date(2026, 10, 20, 22, 0, 0, 0, time.UTC).Sub(since) / time.Hour)
	wantAt := []int{first, first + 24, first + 48, first + 72, first + 96, first + 96 + 25, first + 96 + 25 + 24}
	if !slices.Equal(at, wantAt) {
		t.Errorf("separators at bars %v, want %v", at, wantAt)
	}
	var days []string
	for _, d := range c.Days {
		days = append(days, d.Label)
	}
	if want := []string{"Tue 20 Oct", "Wed 21 Oct", "Thu 22 Oct", "Fri 23 Oct", "Sat 24 Oct", "Sun 25 Oct", "Mon 26 Oct", "Tue 27 Oct"}; !slices.Equal(days, want) {
		t.Errorf("days %q, want %q", days, want)
	}
	// The tallest bar reaches the top of the scale (4 of 4).
	last := c.Bars[len(c.Bars)-1].Segs[0]
	if last.Y != topH || last.H != plotH {
		t.Errorf("the peak bar is at y %v height %v, want %v %v", last.Y, last.H, topH, plotH)
	}
}

// Beyond the palette's colours, the smallest keys are one "other" series;
// the stack of an hour adds up to its total.
func TestChartOther(t *testing.T) {
	until := time.Date(2026, 11, 28, 13, 25, 0, 0, time.UTC)
	since := until.Truncate(time.Hour).Add(time.Hour - Window)
	h := until.Truncate(time.Hour)
	var counts []store.HourCount
	for i := range 12 {
		counts = append(counts, store.HourCount{Hour: h, Key: fmt.Sprintf("jail%02d", i), N: 100 - i})
	}
	c := buildChart("bans", "Bans", "bans", counts, since, until, time.UTC)
	if len(c.Series) != len(palette)+1 {
		t.Fatalf("%d series, want %d", len(c.Series), len(palette)+1)
	}
	other := c.Series[len(c.Series)-1]
	if other.Key != otherKey || other.Total != 91+90+89 || !slices.Equal(other.Keys, []string{"jail09", "jail10", "jail11"}) {
		t.Errorf("other: %+v", other)
	}
	b := c.Bars[0]
	sum := 0
	y := topH + plotH
	for _, s := range b.Segs {
		sum += s.N
		if d := y - (s.Y + s.H); d > 1e-9 || d < -1e-9 {
			t.Errorf("segment %s does not sit on the one below: %v", s.Key, d)
		}
		y = s.Y
	}
	if sum != b.Total || b.Total != c.Total || len(b.Segs) != 10 {
		t.Errorf("stack of %d in %d segments, bar %d, chart %d", sum, len(b.Segs), b.Total, c.Total)
	}
}
