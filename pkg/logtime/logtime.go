// Package logtime parses the timestamps that mail logs start with, without
// regular expressions and without allocating.
//
// Supported forms:
//   - classic syslog: "Nov 28 02:00:19" (also "Nov  8" and "Nov 8"); the year
//     is not in the line and is inferred from a reference time so that the
//     result never lies more than a day after it;
//   - RFC 3339 and rsyslog's high precision form:
//     "2026-11-28T03:14:01.123456+01:00", "...Z", journalctl's "+0100";
//   - Exim's "2026-11-28 02:00:47", optionally with ".123" (+millisec) and
//     " +0100" (log_timezone);
//   - time of day only, as IceWarp writes it: "16:14:01"; the date is the
//     reference's, or the day before if that would put it in the future;
//   - TAI64N labels, as daemontools' multilog and s6-log write them:
//     "@400000004c91b044077a9e94".
//
// Times without a zone are in the location of the reference time.
package logtime

import "time"

// Slack is how far after the reference time a parsed time may lie before the
// year (or the day, for a time of day) is taken to be the previous one. It
// absorbs clock skew between the logging host and the reader.
const Slack = 24 * time.Hour

// ParsePrefix parses a timestamp at the start of line. It returns the time,
// the number of bytes it used including the blanks that follow it, and
// whether a timestamp was found. ref is the time the line is known not to be
// much later than (now for a live log, the file's modification time for an
// old one) and gives the location for zone-less times.
func ParsePrefix(line []byte, ref time.Time) (time.Time, int, bool) {
	t, n, ok := parse(line, ref)
	if !ok {
		return time.Time{}, 0, false
	}
	for n < len(line) && line[n] == ' ' {
		n++
	}
	return t, n, true
}

// Len returns the length ParsePrefix would report, without building the
// time: for skipping a timestamp cheaply.
func Len(line []byte) (int, bool) {
	var zero time.Time
	_, n, ok := scan(line, zero, false)
	if !ok {
		return 0, false
	}
	for n < len(line) && line[n] == ' ' {
		n++
	}
	return n, true
}

// Parse parses text that must be one timestamp and nothing else.
func Parse(text []byte, ref time.Time) (time.Time, bool) {
	t, n, ok := parse(text, ref)
	if !ok || n != len(text) {
		return time.Time{}, false
	}
	return t, true
}

func parse(b []byte, ref time.Time) (time.Time, int, bool) {
	return scan(b, ref, true)
}

// scan recognises a timestamp at the start of b; it builds the time only if
// build is set.
func scan(b []byte, ref time.Time, build bool) (time.Time, int, bool) {
	if len(b) < 8 {
		return time.Time{}, 0, false
	}
	switch {
	case b[0] == '@':
		return parseTAI64N(b, build)
	case isDigit(b[0]) && len(b) >= 10 && b[4] == '-':
		return parseISO(b, ref, build)
	case isDigit(b[0]) && b[2] == ':':
		return parseTimeOfDay(b, ref, build)
	case b[0] >= 'A' && b[0] <= 'Z':
		return parseSyslog(b, ref, build)
	}
	return time.Time{}, 0, false
}

// monthOf returns the month an English three-letter abbreviation names, or 0.
func monthOf(a, b, c byte) int {
	switch uint32(a)<<16 | uint32(b)<<8 | uint32(c) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 1
	case 'F'<<16 | 'e'<<8 | 'b':
		return 2
	case 'M'<<16 | 'a'<<8 | 'r':
		return 3
	case 'A'<<16 | 'p'<<8 | 'r':
		return 4
	case 'M'<<16 | 'a'<<8 | 'y':
		return 5
	case 'J'<<16 | 'u'<<8 | 'n':
		return 6
	case 'J'<<16 | 'u'<<8 | 'l':
		return 7
	case 'A'<<16 | 'u'<<8 | 'g':
		return 8
	case 'S'<<16 | 'e'<<8 | 'p':
		return 9
	case 'O'<<16 | 'c'<<8 | 't':
		return 10
	case 'N'<<16 | 'o'<<8 | 'v':
		return 11
	case 'D'<<16 | 'e'<<8 | 'c':
		return 12
	}
	return 0
}

func parseSyslog(b []byte, ref time.Time, build bool) (time.Time, int, bool) {
	if len(b) < 14 || b[3] != ' ' {
		return time.Time{}, 0, false
	}
	month := monthOf(b[0], b[1], b[2])
	if month == 0 {
		return time.Time{}, 0, false
	}
	i := 4
	if b[i] == ' ' { // "Nov  8"
		i++
	}
	day, i, ok := digits(b, i, 1, 2)
	if !ok || day < 1 || day > 31 || i >= len(b) || b[i] != ' ' {
		return time.Time{}, 0, false
	}
	hh, mm, ss, nsec, n, ok := clock(b, i+1)
	if !ok {
		return time.Time{}, 0, false
	}
	if !build {
		return time.Time{}, n, true
	}
	loc := ref.Location()
	limit := ref.Add(Slack)
	// The year is the reference's unless that puts the line in the future;
	// a day that does not exist (Feb 29) moves to an earlier leap year.
	for year := ref.Year(); year > ref.Year()-9; year-- {
		t := time.Date(year, time.Month(month), day, hh, mm, ss, nsec, loc)
		if t.Day() != day || t.After(limit) {
			continue
		}
		return t, n, true
	}
	return time.Time{}, 0, false
}

func parseISO(b []byte, ref time.Time, build bool) (time.Time, int, bool) {
	year, i, ok := digits(b, 0, 4, 4)
	if !ok || b[i] != '-' {
		return time.Time{}, 0, false
	}
	month, i, ok := digits(b, i+1, 2, 2)
	if !ok || i >= len(b) || b[i] != '-' || month < 1 || month > 12 {
		return time.Time{}, 0, false
	}
	day, i, ok := digits(b, i+1, 2, 2)
	if !ok || i >= len(b) || (b[i] != 'T' && b[i] != ' ') || day < 1 || day > 31 {
		return time.Time{}, 0, false
	}
	hh, mm, ss, nsec, n, ok := clock(b, i+1)
	if !ok {
		return time.Time{}, 0, false
	}
	loc := ref.Location()
	switch {
	case n < len(b) && b[n] == 'Z':
		loc, n = time.UTC, n+1
	case n < len(b) && (b[n] == '+' || b[n] == '-'):
		off, m, ok := zone(b, n, true)
		if !ok {
			return time.Time{}, 0, false
		}
		loc, n = fixed(off), m
	case n+1 < len(b) && b[n] == ' ' && (b[n+1] == '+' || b[n+1] == '-'):
		// Exim's log_timezone: "2026-11-28 02:00:47 +0100 ..."
		if off, m, ok := zone(b, n+1, false); ok && (m == len(b) || b[m] == ' ') {
			loc, n = fixed(off), m
		}
	}
	if !build {
		return time.Time{}, n, true
	}
	t := time.Date(year, time.Month(month), day, hh, mm, ss, nsec, loc)
	if t.Day() != day {
		return time.Time{}, 0, false
	}
	return t, n, true
}

func parseTimeOfDay(b []byte, ref time.Time, build bool) (time.Time, int, bool) {
	hh, mm, ss, nsec, n, ok := clock(b, 0)
	if !ok || !build {
		return time.Time{}, n, ok
	}
	y, m, d := ref.Date()
	t := time.Date(y, m, d, hh, mm, ss, nsec, ref.Location())
	if t.After(ref.Add(time.Hour)) {
		t = time.Date(y, m, d-1, hh, mm, ss, nsec, ref.Location())
	}
	return t, n, true
}

// parseTAI64N reads "@" and 24 hex digits: seconds as 2^62 + 10 + the Unix
// time (the convention of djb's tai64nlocal), then nanoseconds.
func parseTAI64N(b []byte, build bool) (time.Time, int, bool) {
	if len(b) < 25 {
		return time.Time{}, 0, false
	}
	var sec, nsec uint64
	for i := 1; i < 25; i++ {
		c := b[i]
		var v uint64
		switch {
		case c >= '0' && c <= '9':
			v = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v = uint64(c-'a') + 10
		default:
			return time.Time{}, 0, false
		}
		if i <= 16 {
			sec = sec<<4 | v
		} else {
			nsec = nsec<<4 | v
		}
	}
	const base = 1<<62 + 10
	if sec < base || sec-base > 1<<40 || nsec >= 1e9 || (len(b) > 25 && isHex(b[25])) {
		return time.Time{}, 0, false
	}
	if !build {
		return time.Time{}, 25, true
	}
	return time.Unix(int64(sec-base), int64(nsec)).UTC(), 25, true
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' }

// clock parses "hh:mm:ss" with an optional fraction (".123" or ",123") at i.
func clock(b []byte, i int) (hh, mm, ss, nsec, n int, ok bool) {
	if hh, i, ok = digits(b, i, 2, 2); !ok || hh > 23 || i >= len(b) || b[i] != ':' {
		return 0, 0, 0, 0, 0, false
	}
	if mm, i, ok = digits(b, i+1, 2, 2); !ok || mm > 59 || i >= len(b) || b[i] != ':' {
		return 0, 0, 0, 0, 0, false
	}
	if ss, i, ok = digits(b, i+1, 2, 2); !ok || ss > 60 {
		return 0, 0, 0, 0, 0, false
	}
	if ss == 60 { // a leap second: keep it inside the minute
		ss = 59
	}
	if i+1 < len(b) && (b[i] == '.' || b[i] == ',') && isDigit(b[i+1]) {
		i++
		scale := 100000000
		for ; i < len(b) && isDigit(b[i]); i++ {
			nsec += int(b[i]-'0') * scale
			scale /= 10
		}
	}
	if i < len(b) && isDigit(b[i]) {
		return 0, 0, 0, 0, 0, false
	}
	return hh, mm, ss, nsec, i, true
}

// zone parses "+01:00", "+0100" (colon optional when colonOK) at i.
func zone(b []byte, i int, colonOK bool) (off, n int, ok bool) {
	sign := 1
	if b[i] == '-' {
		sign = -1
	}
	h, j, ok := digits(b, i+1, 2, 2)
	if !ok || h > 14 {
		return 0, 0, false
	}
	if colonOK && j < len(b) && b[j] == ':' {
		j++
	}
	m, j, ok := digits(b, j, 2, 2)
	if !ok || m > 59 {
		return 0, 0, false
	}
	if j < len(b) && isDigit(b[j]) {
		return 0, 0, false
	}
	return sign * (h*3600 + m*60), j, true
}

// fixed returns a location for a numeric offset, shared for the common ones
// so that parsing does not allocate.
func fixed(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	idx := off/900 + 14*4
	if off%900 == 0 && idx >= 0 && idx < len(zones) {
		return zones[idx]
	}
	return time.FixedZone("", off)
}

var zones = func() []*time.Location {
	z := make([]*time.Location, 28*4+1)
	for i := range z {
		z[i] = time.FixedZone("", (i-14*4)*900)
	}
	return z
}()

// digits reads between min and max decimal digits at i.
func digits(b []byte, i, min, max int) (v, n int, ok bool) {
	start := i
	for i < len(b) && i-start < max && isDigit(b[i]) {
		v = v*10 + int(b[i]-'0')
		i++
	}
	if i-start < min {
		return 0, 0, false
	}
	return v, i, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
