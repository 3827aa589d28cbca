package logtime

import (
	"encoding/binary"
	"time"
)

// Cache makes ParsePrefix cheaper for the lines of one log, which mostly
// share their timestamp's minute with the line before: it remembers the
// last timestamp with its seconds (and fraction) left out, and the time of
// that minute, and builds the next time from its seconds when the rest
// matches. Its results are exactly ParsePrefix's (TestCacheMatchesParsePrefix
// and FuzzCache hold it to that). The zero value is ready; a Cache is not
// safe for concurrent use.
type Cache struct {
	key   [48]byte // the timestamp without its seconds and fraction
	klen  int      // 0: nothing cached
	timed bool     // base, ref and the rest are set: not only the form, for Len
	sec   int      // where the seconds start; key[sec:klen] is what follows them
	kind  byte     // the form: 's' syslog, 'i' ISO, 't' time of day
	ref   time.Time
	base  time.Time // the time of second 0 of the cached minute
	// refYear is ref's year; ownYear whether the cached syslog time is in
	// it (and not in an earlier year, which depends on the seconds).
	refYear int
	ownYear bool
	gen     uint32 // changes whenever the cached minute does
	// The whole timestamp of the last hit (lastN bytes; 0: none) and its
	// seconds, valid while gen is lastGen: lines of a busy log share their
	// second too.
	last           [48]byte
	lastN          int
	lastSS, lastNs int
	lastGen        uint32
}

// ParsePrefix is ParsePrefix with the cache.
func (c *Cache) ParsePrefix(line []byte, ref time.Time) (time.Time, int, bool) {
	n, ss, nsec, ok := c.hit(line)
	return c.parse(line, ref, n, ss, nsec, ok)
}

// parse is ParsePrefix, given what hit says of line.
func (c *Cache) parse(line []byte, ref time.Time, n, ss, nsec int, hit bool) (time.Time, int, bool) {
	if hit && c.timed && c.sameRef(ref) {
		t := c.base.Add(time.Duration(ss)*time.Second + time.Duration(nsec))
		switch {
		case c.kind == 's' && t.After(ref.Add(Slack)):
		case c.kind == 't' && t.After(ref.Add(time.Hour)):
		default:
			return t, n, true
		}
	}
	t, n, ok := ParsePrefix(line, ref)
	if !ok {
		return t, n, ok
	}
	c.remember(line[:n], t, ref, true)
	return t, n, true
}

// Len is Len, faster when line's timestamp has the cached one's minute.
func (c *Cache) Len(line []byte) (int, bool) {
	n, ok, _ := c.LenHit(line)
	return n, ok
}

// A Hit is what LenHit learnt of a line whose timestamp has the cached
// minute, so that ParseHit need not read it again.
type Hit struct {
	n, ss, nsec int32
	gen         uint32 // the cache's gen at the hit; 0: no hit
}

// LenHit is Len, and also returns what it learnt of line for ParseHit.
func (c *Cache) LenHit(line []byte) (int, bool, Hit) {
	if n, ss, nsec, ok := c.hit(line); ok {
		return n, true, Hit{n: int32(n), ss: int32(ss), nsec: int32(nsec), gen: c.gen}
	}
	n, ok := Len(line)
	if ok {
		c.remember(line[:n], time.Time{}, time.Time{}, false)
	}
	return n, ok, Hit{}
}

// ParseHit is ParsePrefix for the line that LenHit returned h for (the
// same bytes), cheaper when the cache has not changed since.
func (c *Cache) ParseHit(line []byte, ref time.Time, h Hit) (time.Time, int, bool) {
	if h.gen != 0 && h.gen == c.gen {
		return c.parse(line, ref, int(h.n), int(h.ss), int(h.nsec), true)
	}
	return c.ParsePrefix(line, ref)
}

// hit reports whether line starts with a timestamp of the cached minute,
// with its length and seconds.
func (c *Cache) hit(line []byte) (n, ss, nsec int, ok bool) {
	if n := c.lastN; n > 0 && c.lastGen == c.gen && len(line) > n && equalPrefix(line, &c.last, n) {
		// The timestamp of the last hit, byte for byte: hit would read
		// the same seconds and the same rest (which ends in a blank, or
		// it would not have been kept), and look at no byte beyond them
		// but the one checked here (see the end of hit).
		if line[n] != ' ' && line[n] != '+' && line[n] != '-' {
			return n, c.lastSS, c.lastNs, true
		}
	}
	sec := c.sec
	if c.klen == 0 || len(line) <= sec+2 || !equalPrefix(line, &c.key, sec) {
		return 0, 0, 0, false
	}
	// Read the seconds; the rest must be the cached rest, exactly, and
	// what follows it no blank (more blanks) and no zone (Exim's " +0100"
	// after a zone-less time), or nothing.
	ss, nsec, end, ok := seconds(line, sec)
	suf := c.key[sec:c.klen]
	if !ok || len(line) < end+len(suf) {
		return 0, 0, 0, false
	}
	for i, b := range suf {
		if line[end+i] != b {
			return 0, 0, 0, false
		}
	}
	n = end + len(suf)
	// The parsers look at most two bytes past a timestamp, and only when
	// the first is a blank; a cached timestamp that ended the line has not
	// had those looked at.
	switch {
	case n == len(line):
	case len(suf) == 0 || suf[len(suf)-1] != ' ':
		return 0, 0, 0, false
	case line[n] == ' ' || line[n] == '+' || line[n] == '-':
		return 0, 0, 0, false
	default:
		if n <= len(c.last) {
			copy(c.last[:], line[:n])
			c.lastN, c.lastSS, c.lastNs, c.lastGen = n, ss, nsec, c.gen
		}
	}
	return n, ss, nsec, true
}

// equalPrefix reports whether line and key start with the same n bytes; line
// holds at least n, and n is at most len(key).
func equalPrefix(line []byte, key *[48]byte, n int) bool {
	if n < 8 {
		return string(line[:n]) == string(key[:n])
	}
	if n <= 16 { // a syslog timestamp: two words, the second overlapping
		return binary.LittleEndian.Uint64(line) == binary.LittleEndian.Uint64(key[:]) &&
			binary.LittleEndian.Uint64(line[n-8:]) == binary.LittleEndian.Uint64(key[n-8:])
	}
	// Eight bytes at a time, the last eight overlapping the ones before.
	i := 0
	for ; i+8 < n; i += 8 {
		if binary.LittleEndian.Uint64(line[i:]) != binary.LittleEndian.Uint64(key[i:]) {
			return false
		}
	}
	return binary.LittleEndian.Uint64(line[n-8:]) == binary.LittleEndian.Uint64(key[n-8:])
}

// seconds reads "ss" and an optional fraction at i, as clock does.
func seconds(b []byte, i int) (ss, nsec, end int, ok bool) {
	if !isDigit(b[i]) || !isDigit(b[i+1]) {
		return 0, 0, 0, false
	}
	ss = int(b[i]-'0')*10 + int(b[i+1]-'0')
	if ss > 60 {
		return 0, 0, 0, false
	}
	if ss == 60 { // a leap second: keep it inside the minute
		ss = 59
	}
	end = i + 2
	if end+1 < len(b) && (b[end] == '.' || b[end] == ',') && isDigit(b[end+1]) {
		end++
		scale := 100000000
		for ; end < len(b) && isDigit(b[end]); end++ {
			nsec += int(b[end]-'0') * scale
			scale /= 10
		}
	}
	if end < len(b) && isDigit(b[end]) {
		return 0, 0, 0, false
	}
	return ss, nsec, end, true
}

// remember caches ts, a timestamp ParsePrefix read as t against ref; with
// timed false, only its form, for Len.
func (c *Cache) remember(ts []byte, t, ref time.Time, timed bool) {
	c.klen, c.timed = 0, false
	if c.gen++; c.gen == 0 { // 0 marks no hit
		c.gen++
	}
	// The clock: the first "dd:dd:dd" of the timestamp.
	p := -1
	for i := 0; i+8 <= len(ts); i++ {
		if ts[i+2] == ':' && ts[i+5] == ':' && isDigit(ts[i]) && isDigit(ts[i+1]) &&
			isDigit(ts[i+3]) && isDigit(ts[i+4]) && isDigit(ts[i+6]) && isDigit(ts[i+7]) {
			p = i
			break
		}
	}
	if p < 0 {
		return // TAI64N: cheap already
	}
	sec := p + 6
	ss, nsec, end, ok := seconds(ts, sec)
	klen := sec + len(ts) - end
	if !ok || klen > len(c.key) {
		return
	}
	switch {
	case ts[0] >= 'A' && ts[0] <= 'Z':
		c.kind = 's'
	case ts[2] == ':':
		c.kind = 't'
	default:
		c.kind = 'i'
	}
	if timed {
		c.base = t.Add(-time.Duration(ss)*time.Second - time.Duration(nsec))
		if c.base.Second() != 0 || c.base.Nanosecond() != 0 {
			return // not a plain minute: cannot happen, and never trusted then
		}
	}
	copy(c.key[:sec], ts[:sec])
	copy(c.key[sec:klen], ts[end:])
	c.klen, c.sec, c.ref, c.timed = klen, sec, ref, timed
	c.refYear = ref.Year()
	c.ownYear = c.base.Year() == c.refYear
}

// sameRef reports whether a timestamp of the given form, parsed against
// ref, gets its date the way the cached one did against c.ref.
func (c *Cache) sameRef(ref time.Time) bool {
	if ref.Location() != c.ref.Location() {
		return false
	}
	switch c.kind {
	case 'i':
		return true // the date is in the timestamp; ref gives only the zone
	case 's':
		// The year is the reference's unless that puts the time after
		// ref+Slack: when the cached time kept the reference's year, a
		// reference of the same year keeps it too, as long as the time is
		// not after the new limit (checked by the caller).
		return c.ownYear && (ref.Equal(c.ref) || ref.Year() == c.refYear)
	}
	return ref.Equal(c.ref)
}
