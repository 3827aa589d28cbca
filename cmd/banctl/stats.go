package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// now is the clock of top and history --chart (tests set it).
var now = time.Now

// zone is the time zone banctl shows times in: nil for time.Local (tests
// set it, rather than time.Local, which other goroutines read).
var zone *time.Location

// local is t in banctl's time zone.
func local(t time.Time) time.Time {
	if zone != nil {
		return t.In(zone)
	}
	return t.Local()
}

// parseSince reads a --since DURATION as a time that long before now.
func parseSince(cmd, since string, stderr io.Writer) (time.Time, bool) {
	d, err := config.ParseDuration(since)
	if err != nil {
		fmt.Fprintf(stderr, "banctl %s: --since: %v\n", cmd, err)
		return time.Time{}, false
	}
	return now().Add(-d), true
}

func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("top", "[--since 24h] [-n 10] [--json]",
		"Shows what an attack looks like: how many bans began in the period, and the addresses and prefixes\n"+
			"banned most, the IPv4 /24 and IPv6 /64 networks, the jails and the fingerprints (HELO and user\n"+
			"names that ban on sight) with the most bans.",
		"  banctl top\n  banctl top --since 7d -n 20\n  banctl top --json | jq -r '.nets24[].key'\n", stderr)
	since := fs.String("since", "24h", "the bans begun within `DURATION` (30d, 12h)")
	n := fs.Int("n", control.DefaultTop, fmt.Sprintf("at most `N` entries per list (1 to %d)", control.MaxTop))
	if _, code, ok := parse(fs, args, 0, 0); !ok {
		return code
	}
	if *n < 1 || *n > control.MaxTop {
		fmt.Fprintf(stderr, "banctl top: -n %d: want 1 to %d\n", *n, control.MaxTop)
		return 2
	}
	from, ok := parseSince("top", *since, stderr)
	if !ok {
		return 2
	}
	top, err := control.NewClient(*c.socket).Top(ctx, from, *n)
	if err != nil {
		return fail(stderr, "top", err)
	}
	if *c.json {
		json.NewEncoder(stdout).Encode(top)
		return 0
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	writeTop(w, top, *since)
	return 0
}

// writeTop prints a top reply: a line of totals, then each list as
// key, bans and share of the period's bans, the keys and counts of all
// lists aligned.
func writeTop(w io.Writer, top *control.TopReply, since string) {
	fmt.Fprintf(w, "%d bans since %s (the last %s)\n", top.Bans, zoned(top.Since), since)
	lists := []struct {
		title string
		l     []control.Count
	}{
		{"addresses and prefixes", top.Addresses},
		{"IPv4 /24 networks", top.Nets24},
		{"IPv6 /64 networks", top.Nets64},
		{"jails", top.Jails},
		{"fingerprints", top.Fingerprints},
	}
	keyW, nW := 0, 1
	for _, l := range lists {
		for _, c := range l.l {
			keyW = max(keyW, utf8.RuneCountInString(c.Key))
			nW = max(nW, len(fmt.Sprint(c.Bans)))
		}
	}
	for _, l := range lists {
		fmt.Fprintf(w, "\n%s\n", l.title)
		if len(l.l) == 0 {
			fmt.Fprintln(w, "  none")
		}
		for _, c := range l.l {
			share := 0.0
			if top.Bans > 0 {
				share = 100 * float64(c.Bans) / float64(top.Bans)
			}
			fmt.Fprintf(w, "  %s%s  %*d  %5.1f%%\n", c.Key, strings.Repeat(" ", keyW-utf8.RuneCountInString(c.Key)), nW, c.Bans, share)
		}
	}
}

// zoned is a time in the local zone, to the minute, with the zone's name.
func zoned(t time.Time) string { return local(t).Format("2006-01-02 15:04 MST") }

// chartHistory prints the bans per hour of the last since as a chart (see
// writeChart) or, with --json, the daemon's answer.
func chartHistory(ctx context.Context, c common, jail, since string, stdout, stderr io.Writer) int {
	from, ok := parseSince("history", since, stderr)
	if !ok {
		return 2
	}
	t := now()
	h, err := control.NewClient(*c.socket).Hours(ctx, from, jail)
	if err != nil {
		return fail(stderr, "history", err)
	}
	if *c.json {
		json.NewEncoder(stdout).Encode(h)
		return 0
	}
	width := 80
	if fd, ok := terminalFd(stdout); ok {
		width = termWidth(fd)
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	writeChart(w, h.Bans, from, t, jail, width)
	return 0
}

// chartHours is the longest period drawn one row per hour; a longer one
// is drawn one row per day.
const chartHours = 48

// writeChart draws the bans per hour from the hour of from to the hour of
// to, in the local time zone, every hour of the period whether it had bans
// or not.
//
// Up to chartHours hours, each hour is a row: its time, its count and a
// bar of █ (to an eighth of a cell) as long as the count, the busiest
// hour's filling the width. A longer period is a row per local day, of
// 24 cells, one per hour, under a ruler of the hours: a block ▁▂▃▄▅▆▇█
// whose height is the hour's count against the busiest hour's (any ban
// shows at least ▁; a blank is none), then the day's total. An hour is in
// the cell of its local start, so the day summer time ends shows its
// twice-lived hour's bans in one cell, and the day it starts leaves a cell
// blank; where the zone is not a whole number of hours off UTC, the cells
// are hours from :30 or :45.
func writeChart(w io.Writer, bans []control.BanHour, from, to time.Time, jail string, width int) {
	first, last := from.UTC().Truncate(time.Hour), to.UTC().Truncate(time.Hour)
	per := map[int64]int{} // by Unix time of the hour
	for _, b := range bans {
		h := b.Hour.UTC()
		per[h.Unix()] += b.Bans
		if h.After(last) {
			last = h // the daemon's clock is ahead: draw what it has
		}
	}
	var hours []time.Time
	total := 0
	for h := first; !h.After(last); h = h.Add(time.Hour) {
		hours = append(hours, h)
		total += per[h.Unix()]
	}
	what := "bans per hour"
	if jail != "" {
		what += " in jail " + jail
	}
	names := zoneNames(first, last)
	if m := local(first).Minute(); m != 0 && len(hours) > chartHours {
		names += fmt.Sprintf("; the cells are hours from :%02d", m)
	}
	fmt.Fprintf(w, "%s from %s to %s (%s)\n", what, local(first).Format("2006-01-02 15:04"),
		local(last.Add(time.Hour-time.Minute)).Format("2006-01-02 15:04"), names)
	if len(hours) <= chartHours {
		fmt.Fprintf(w, "%d bans in all\n", total)
		hourRows(w, hours, per, width)
		return
	}
	days, most := perDay(hours, per)
	fmt.Fprintf(w, "%d bans in all", total)
	if most > 0 {
		fmt.Fprintf(w, "; █ = %d bans in an hour", most)
	}
	fmt.Fprintln(w)
	dayRows(w, days, most)
}

// zoneNames names the local zone over the period: "CET", or "CET/CEST"
// when summer time starts or ends in it.
func zoneNames(first, last time.Time) string {
	a, b := local(first).Format("MST"), local(last).Format("MST")
	if a == b {
		return a
	}
	return a + "/" + b
}

// dayW is the width of a day's label.
const dayW = len("Mon 2006-01-02")

// hourRows draws a row per hour, within width columns.
func hourRows(w io.Writer, hours []time.Time, per map[int64]int, width int) {
	busiest := 0
	for _, h := range hours {
		busiest = max(busiest, per[h.Unix()])
	}
	nW := len(fmt.Sprint(busiest))
	barW := max(10, width-1-len(" 15:04  ")-dayW-nW-1)
	day := ""
	for _, h := range hours {
		l := local(h)
		label := strings.Repeat(" ", dayW)
		if d := l.Format("Mon 2006-01-02"); d != day {
			label, day = d, d
		}
		n := per[h.Unix()]
		fmt.Fprintf(w, "%s %s  %*d", label, l.Format("15:04"), nW, n)
		if n > 0 {
			fmt.Fprintf(w, " %s", bar(n, busiest, barW))
		}
		fmt.Fprintln(w)
	}
}

// bar is n of most as a bar of at most width cells, to an eighth of a
// cell; at least an eighth when n > 0.
func bar(n, most, width int) string {
	eighths := max(1, n*width*8/most)
	return strings.Repeat("█", eighths/8) + [8]string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}[eighths%8]
}

// day is a row of dayRows: the bans of a local day per local hour.
type day struct {
	name  string
	cells [24]int
	total int
}

// perDay sums the hours per local day and hour, and returns the days and
// the largest cell.
func perDay(hours []time.Time, per map[int64]int) ([]*day, int) {
	var days []*day
	most := 0
	for _, h := range hours {
		l := local(h)
		name := l.Format("Mon 2006-01-02")
		if len(days) == 0 || days[len(days)-1].name != name {
			days = append(days, &day{name: name})
		}
		d := days[len(days)-1]
		d.cells[l.Hour()] += per[h.Unix()]
		d.total += per[h.Unix()]
		most = max(most, d.cells[l.Hour()])
	}
	return days, most
}

// levels are the cells of dayRows: none, then up to an eighth of the
// busiest hour, up to two eighths, ..., up to all of it.
var levels = [9]rune{' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'}

// dayRows draws a row per day, a cell per hour, under a ruler.
func dayRows(w io.Writer, days []*day, most int) {
	totalW := len("total")
	for _, d := range days {
		totalW = max(totalW, len(fmt.Sprint(d.total)))
	}
	fmt.Fprintf(w, "%*s  %-24s  %*s\n", dayW, "", "0     6     12    18", totalW, "total")
	for _, d := range days {
		var cells [24]rune
		for i, n := range d.cells {
			cells[i] = levels[0]
			if n > 0 {
				cells[i] = levels[(n*8+most-1)/most]
			}
		}
		fmt.Fprintf(w, "%s  %s  %*d\n", d.name, string(cells[:]), totalW, d.total)
	}
}
