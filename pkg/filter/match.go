package filter

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/logtime"
)

// Prefix kinds of a rule, besides an index into Filter.prefixes.
const (
	noPrefix     = -1 // the rule matches at the start of the message
	syslogPrefix = -2 // the rule matches after a syslog header whose tag is the filter's program
)

// Match returns the event that line holds, if any. ref is the time the line
// is known not to be much later than: now for a live log, the modification
// time of a file read offline; it also gives the location of times written
// without a zone. Match is safe for concurrent use and does not allocate for
// lines that hold no event.
func (f *Filter) Match(line []byte, ref time.Time) (event.Event, bool) {
	var buf [1]event.Event
	if evs := f.set.Match(line, ref, buf[:0]); len(evs) > 0 {
		return evs[0], true
	}
	return event.Event{}, false
}

// Set matches lines against several filters with one prefilter pass.
type Set struct {
	filters   []*Filter
	pre       *prefilter
	allSyslog bool // every rule of every filter follows a syslog header
}

// NewSet combines filters. It fails if together they have more distinct
// literals than the prefilter can track.
func NewSet(filters ...*Filter) (*Set, error) {
	ids := map[string]int32{}
	var lits []string
	s := &Set{allSyslog: len(filters) > 0}
	number := func(list []*rule) []*rule {
		out := make([]*rule, len(list))
		for i, r := range list {
			c := *r
			c.lits = make([]int32, len(c.literals))
			for j, l := range c.literals {
				id, ok := ids[l]
				if !ok {
					id = int32(len(lits))
					ids[l] = id
					lits = append(lits, l)
				}
				c.lits[j] = id
			}
			out[i] = &c
			if c.prefix != syslogPrefix {
				s.allSyslog = false
			}
		}
		return out
	}
	for _, f := range filters {
		// Copies of the rules, so that each set numbers literals its own way;
		// the program cache stays shared.
		s.filters = append(s.filters, &Filter{
			Name: f.Name, Description: f.Description, set: f.set,
			prefixes: f.prefixes, program: f.program,
			rules: number(f.rules), ignores: number(f.ignores),
		})
	}
	if len(lits) > maxLiterals {
		return nil, fmt.Errorf("filter: %d distinct literals, at most %d", len(lits), maxLiterals)
	}
	for _, f := range s.filters {
		f.litRules = litRules(f.rules, len(lits))
	}
	s.pre = newPrefilter(lits)
	return s, nil
}

// litRules returns, for each of n literal ids, the rules that need it as a
// bitmask (bit j: rules[j]), so that a line's found literals name the rules
// to try without testing every rule; nil when there are more than 64 rules.
func litRules(rules []*rule, n int) []uint64 {
	if len(rules) > 64 {
		return nil
	}
	masks := make([]uint64, n)
	for j, r := range rules {
		for _, id := range r.lits {
			masks[id] |= 1 << j
		}
	}
	return masks
}

// candidates returns the rules whose literals found holds, as a bitmask
// over f.rules.
func (f *Filter) candidates(found *litset) uint64 {
	var mask uint64
	for w, word := range found {
		for ; word != 0; word &= word - 1 {
			if id := w*64 + bits.TrailingZeros64(word); id < len(f.litRules) {
				mask |= f.litRules[id]
			}
		}
	}
	return mask
}

// Filters returns the set's filters in order.
func (s *Set) Filters() []string {
	names := make([]string, len(s.filters))
	for i, f := range s.filters {
		names[i] = f.Name
	}
	return names
}

// Match appends to dst the events that line holds, at most one per filter,
// in the order of the set's filters, and returns the extended slice. See
// Filter.Match for ref. It does not allocate for lines that hold no event.
// A Matcher does the same faster for the lines of one log.
func (s *Set) Match(line []byte, ref time.Time, dst []event.Event) []event.Event {
	lc := lineCtx{line: line, ref: ref}
	return s.match(&lc, nil, dst)
}

// A Matcher matches lines against a Set as Set.Match does, with the same
// results, and remembers between lines what makes the next line cheaper:
// the minute of the last timestamp it parsed, and which filters watch the
// syslog tags it has seen. Use one per goroutine: it is not safe for
// concurrent use.
type Matcher struct {
	set  *Set
	ts   logtime.Cache
	tags [tagSlots]tagSlot
	fast fastScratch
	host hostCache
	hdrs hdrCache
	// lc is the line being matched, kept here so that a line only resets
	// what the last one left (see reset) instead of building it anew.
	lc lineCtx
}

// hostCache remembers the host name of the last syslog header, which is
// the same on most lines of a log: the header parse then starts at the tag.
type hostCache struct {
	word [2]uint64 // the host name and its blank, little-endian
	mask [2]uint64 // the bytes of word that hold them
	n    int       // their length, at most 16; 0: nothing cached
}

// skip reports whether b starts with the cached host name and its blank.
func (h *hostCache) skip(b []byte) bool {
	if h.n == 0 || len(b) < 16 {
		return false
	}
	return binary.LittleEndian.Uint64(b)&h.mask[0] == h.word[0] &&
		binary.LittleEndian.Uint64(b[8:])&h.mask[1] == h.word[1]
}

// set caches b[:n], a host name and its blank, if it is short enough and b
// holds 16 bytes to compare with.
func (h *hostCache) set(b []byte, n int) {
	h.n = 0
	if n > 16 || len(b) < 16 {
		return
	}
	for w := range h.word {
		h.mask[w] = prefixMask(n, w)
		h.word[w] = binary.LittleEndian.Uint64(b[8*w:]) & h.mask[w]
	}
	h.n = n
}

// prefixMask returns the mask of the bytes, in little-endian word w (bytes
// 8w to 8w+7), that belong to the first n bytes: all, some or none.
func prefixMask(n, w int) uint64 {
	k := min(max(n-8*w, 0), 8)      // bytes of the prefix in this word
	return ^uint64(0) >> (64 - 8*k) // 0 when k is
}

// hdrCache remembers the syslog tags of recent lines with what follows them
// ("postfix/smtpd[" or "dovecot: ") and which filters watch each: a line
// that starts, after the host name, with one of them needs no search for
// the blank after the tag and no look-up of its watchers. A log has few
// tags; a line is compared only with the entries of its bucket.
type hdrCache struct {
	ents [hdrEnts]hdrEnt
	n    int // entries in use
	next int // the entry to replace when all are in use
	// Every key in use holds at least its first sigLen bytes (the
	// shortest key's length, at most 16), so an entry can only hold a
	// line that has the same first sigLen bytes: the buckets sort entries
	// and lines by a hash of those bytes (sigMask selects them).
	sigMask [2]uint64
	bucket  [hdrBuckets]uint8 // the entries (bit i: ents[i]) of each bucket
}

// hdrEnts is how many tags a hdrCache holds (at most 8: a bucket is a
// uint8); hdrKeyLen the longest tag with its delimiter it keeps;
// hdrBuckets how many buckets sort them.
const (
	hdrEnts    = 8
	hdrKeyLen  = 32
	hdrBuckets = 16
)

// bucketOf returns the bucket of a line or key whose first 16 bytes are the
// little-endian words w0 and w1.
func (c *hdrCache) bucketOf(w0, w1 uint64) int {
	a, b := w0&c.sigMask[0], w1&c.sigMask[1]
	return int((a*0x9E3779B97F4A7C15 ^ b*0xC2B2AE3D27D4EB4F) >> 60)
}

// hdrEnt is one remembered tag: key is the tag and "[" (pid set) or the tag
// and ": ", little-endian, with mask the bytes of key that hold it.
type hdrEnt struct {
	key, mask [hdrKeyLen / 8]uint64
	n         int // len(tag) + len(delimiter)
	tagLen    int
	pid       bool
	watched   uint64
}

// holds reports whether a line that continues with the little-endian
// words w0 to w3 starts with e's key.
func (e *hdrEnt) holds(w0, w1, w2, w3 uint64) bool {
	return (w0&e.mask[0])^e.key[0]|(w1&e.mask[1])^e.key[1] == 0 &&
		(w2&e.mask[2])^e.key[2]|(w3&e.mask[3])^e.key[3] == 0
}

// lookup finds the header of b, the line from the tag on, in the cache. It
// returns the tag's length, where the message starts in b and the tag's
// watchers; ok is false if no entry matches. The result is what header's
// parse would find: a key holds no blank, so the first blank of b is the
// one after the ":" that ends the key, or that "]:" after the pid does.
func (c *hdrCache) lookup(b []byte) (tagLen, body int, watched uint64, ok bool) {
	if len(b) < hdrKeyLen {
		return 0, 0, 0, false
	}
	w0, w1 := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
	w2, w3 := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
	for in := c.bucket[c.bucketOf(w0, w1)]; in != 0; in &= in - 1 {
		e := &c.ents[bits.TrailingZeros8(in)]
		if !e.holds(w0, w1, w2, w3) {
			continue
		}
		if !e.pid {
			return e.tagLen, e.n, e.watched, true
		}
		// "[", one or more digits, "]: ".
		j := skipDigits(b, e.n)
		if j == e.n || j+3 > len(b) || b[j] != ']' || b[j+1] != ':' || b[j+2] != ' ' {
			continue // "a[1][2]x: " holds "a[1][", and may be an entry too
		}
		return e.tagLen, j + 3, e.watched, true
	}
	return 0, 0, 0, false
}

// skipDigits returns the index of the first byte of b from i on that is
// not an ASCII digit, or len(b). Eight bytes are looked at in one go, as
// a process id's digits are a few.
func skipDigits(b []byte, i int) int {
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		// A byte's top bit is set if it is below '0' (the subtraction
		// borrows) or above '9' (the addition reaches 0x80, or the
		// subtraction leaves it set). Digits neither borrow nor carry,
		// so every byte up to the first other one is judged alone.
		if m := ((w + 0x4646464646464646) | (w - 0x3030303030303030)) & 0x8080808080808080; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	return i
}

// add remembers the header of b, the line from the tag on, that header
// parsed: the tag is b[:tagLen] and the message starts at body.
func (c *hdrCache) add(b []byte, tagLen, body int, watched uint64) {
	pid := b[tagLen] == '['
	n := tagLen + 1 // the tag and "["
	if !pid {
		n = tagLen + 2 // the tag and ": "
	}
	if n > hdrKeyLen || len(b) < hdrKeyLen || !pid && body != n {
		return
	}
	i := c.n
	if i == hdrEnts {
		i = c.next
		c.next = (c.next + 1) % hdrEnts
	} else {
		c.n++
	}
	e := &c.ents[i]
	for w := range e.key {
		e.mask[w] = prefixMask(n, w)
		e.key[w] = binary.LittleEndian.Uint64(b[8*w:]) & e.mask[w]
	}
	e.n, e.tagLen, e.pid, e.watched = n, tagLen, pid, watched
	c.sort()
}

// sort puts the entries in use into their buckets.
func (c *hdrCache) sort() {
	sig := 16
	for i := range c.ents[:c.n] {
		sig = min(sig, c.ents[i].n)
	}
	for w := range c.sigMask {
		c.sigMask[w] = prefixMask(sig, w)
	}
	c.bucket = [hdrBuckets]uint8{}
	for i := range c.ents[:c.n] {
		e := &c.ents[i]
		c.bucket[c.bucketOf(e.key[0], e.key[1])] |= 1 << i
	}
}

// tagSlots is the size of a Matcher's direct-mapped cache of syslog tags;
// maxTagLen the longest tag it keeps.
const (
	tagSlots  = 64
	maxTagLen = 40
)

type tagSlot struct {
	n    uint8 // the tag's length; 0: empty
	tag  [maxTagLen]byte
	mask uint64 // which of the set's filters watch the tag
}

// NewMatcher returns a Matcher for s.
func (s *Set) NewMatcher() *Matcher {
	m := &Matcher{set: s}
	m.lc = lineCtx{tc: &m.ts, fast: &m.fast, host: &m.host, hdrs: &m.hdrs}
	return m
}

// NewMatcher returns a Matcher for the filter alone.
func (f *Filter) NewMatcher() *Matcher { return f.set.NewMatcher() }

// Match is Set.Match.
func (m *Matcher) Match(line []byte, ref time.Time, dst []event.Event) []event.Event {
	lc := &m.lc
	lc.reset(line, ref)
	return m.set.match(lc, m, dst)
}

// Timed reports whether line starts with a timestamp logtime can read, as
// cheaply as the Matcher's cache allows (for counting lines without one).
func (m *Matcher) Timed(line []byte) bool {
	_, ok := m.ts.Len(line)
	return ok
}

// watchMask returns which filters watch tag, from the cache when it holds
// the tag.
func (m *Matcher) watchMask(tag []byte) uint64 {
	if len(tag) == 0 || len(tag) > maxTagLen || len(m.set.filters) > 64 {
		return m.set.watchMask(tag)
	}
	// The hash: the first and the last 8 bytes, and the length.
	var a, b uint64
	if n := len(tag); n >= 8 {
		a, b = binary.LittleEndian.Uint64(tag), binary.LittleEndian.Uint64(tag[n-8:])
	} else {
		for i, c := range tag {
			a |= uint64(c) << (8 * i)
		}
	}
	h := (a*0x9E3779B97F4A7C15 ^ b*0xC2B2AE3D27D4EB4F) + uint64(len(tag))*0xFF51AFD7ED558CCD
	slot := &m.tags[h>>58%tagSlots]
	if int(slot.n) == len(tag) && string(slot.tag[:slot.n]) == string(tag) {
		return slot.mask
	}
	mask := m.set.watchMask(tag)
	slot.n = uint8(len(tag))
	copy(slot.tag[:], tag)
	slot.mask = mask
	return mask
}

// watchMask returns which filters watch tag: bit i for filter i (all bits
// from 63 on share bit 63).
func (s *Set) watchMask(tag []byte) uint64 {
	var mask uint64
	for i, f := range s.filters {
		if f.program.matches(tag) {
			mask |= 1 << min(i, 63)
		}
	}
	return mask
}

func (s *Set) match(lc *lineCtx, m *Matcher, dst []event.Event) []event.Event {
	text := lc.line
	if s.allSyslog {
		// Every rule follows a syslog header: a line without one, or from a
		// program no filter watches, is done with before the scan, and the
		// scan covers only the message.
		if !lc.header() {
			return dst
		}
		if !lc.watchedBy(s, m) {
			return dst
		}
		text = lc.line[lc.bodyOff:]
	}
	var found litset
	if !s.pre.scan(text, &found) {
		return dst
	}
	for i, f := range s.filters {
		if ev, ok := f.matchRules(lc, s, m, i, &found); ok {
			dst = append(dst, ev)
		}
	}
	return dst
}

// lineCtx holds what has been parsed of one line, each part once and only
// when a rule needs it.
type lineCtx struct {
	line []byte
	ref  time.Time

	offDone bool
	msgOff  int // where the message starts, after the timestamp
	tsDone  bool
	t       time.Time // zero if the line has no parsable leading timestamp

	asciiDone bool
	ascii     bool // the line holds only ASCII: the fast matcher may run

	tc   *logtime.Cache // nil: no cache
	hit  logtime.Hit    // what tc learnt of the timestamp, for timestamp
	fast *fastScratch   // the fast matcher's memory; nil: from a pool
	host *hostCache     // nil: no cache
	hdrs *hdrCache      // nil: no cache
	// hdrMiss: the header was parsed, not found in hdrs; watchedBy adds it.
	hdrMiss bool

	hdrDone bool
	hdrOK   bool
	maskOK  bool   // watched holds the syslog tag's watchers
	watched uint64 // which filters watch the syslog tag
	tagOff  int    // the syslog tag, without "[pid]"
	tagEnd  int
	bodyOff int // after the tag's ": "
}

// reset makes lc a new line's, keeping its caches: every field that the
// done flags do not guard is set.
func (lc *lineCtx) reset(line []byte, ref time.Time) {
	lc.line, lc.ref = line, ref
	lc.offDone, lc.tsDone, lc.asciiDone, lc.hdrDone = false, false, false, false
	lc.hdrOK, lc.maskOK, lc.hdrMiss = false, false, false
	lc.hit = logtime.Hit{}
}

// find runs rule r on text, a part of the line, and returns regexp's
// FindSubmatchIndex result, in buf when the fast matcher could run.
func (lc *lineCtx) find(r *rule, text []byte, buf *[maxFastCaps]int) []int {
	if r.fast != nil && r.fast.ncap <= len(buf) {
		if !lc.asciiDone {
			lc.ascii, lc.asciiDone = isASCII(lc.line), true
		}
		if lc.ascii {
			var matched, ok bool
			if lc.fast != nil {
				matched, ok = r.fast.matchIn(text, buf[:r.fast.ncap], lc.fast)
			} else {
				matched, ok = r.fast.match(text, buf[:r.fast.ncap])
			}
			if ok {
				if !matched {
					return nil
				}
				return buf[:r.fast.ncap]
			}
		}
	}
	return r.re.FindSubmatchIndex(text)
}

// maxFastCaps bounds the submatch positions the fast matcher reports.
const maxFastCaps = 24

// message finds where the message starts, after the leading timestamp.
func (lc *lineCtx) message() {
	if !lc.offDone {
		if lc.tc != nil {
			lc.msgOff, _, lc.hit = lc.tc.LenHit(lc.line)
		} else {
			lc.msgOff, _ = logtime.Len(lc.line)
		}
		lc.offDone = true
	}
}

// timestamp parses the leading timestamp, for a line that yields an event.
func (lc *lineCtx) timestamp() {
	if !lc.tsDone {
		if lc.tc != nil {
			lc.t, lc.msgOff, _ = lc.tc.ParseHit(lc.line, lc.ref, lc.hit)
		} else {
			lc.t, lc.msgOff, _ = logtime.ParsePrefix(lc.line, lc.ref)
		}
		lc.tsDone, lc.offDone = true, true
	}
}

// watchedBy reports whether a filter of s watches the line's syslog tag
// (the line must have a header), remembering which.
func (lc *lineCtx) watchedBy(s *Set, m *Matcher) bool {
	if !lc.maskOK {
		if m != nil {
			lc.watched = m.watchMask(lc.tag())
			if lc.hdrMiss && lc.hdrs != nil {
				lc.hdrs.add(lc.line[lc.tagOff:], lc.tagEnd-lc.tagOff, lc.bodyOff-lc.tagOff, lc.watched)
			}
		} else {
			lc.watched = s.watchMask(lc.tag())
		}
		lc.maskOK = true
	}
	return lc.watched != 0
}

// watches reports whether filter i of s watches the line's syslog tag.
func (lc *lineCtx) watches(s *Set, m *Matcher, i int) bool {
	return lc.header() && lc.watchedBy(s, m) && lc.watched&(1<<min(i, 63)) != 0 &&
		(i < 63 || s.filters[i].program.matches(lc.tag()))
}

func (lc *lineCtx) tag() []byte { return lc.line[lc.tagOff:lc.tagEnd] }

// header parses the syslog header after the timestamp: an optional host
// name, then the tag "program[pid]: " or "program: ". It reports whether
// there is one.
func (lc *lineCtx) header() bool {
	if lc.hdrDone {
		return lc.hdrOK
	}
	lc.hdrDone = true
	lc.message()
	line := lc.line
	start := lc.msgOff
	if h := lc.host; h != nil && h.skip(line[start:]) {
		// The cached host name and its blank: what the parse below would
		// find, as it looks at no byte beyond them to skip the host.
		start += h.n
	} else {
		// The first word: the host name, or already the tag when it ends
		// in ':' or holds '['.
		sp := bytes.IndexByte(line[start:], ' ')
		if sp <= 0 {
			return false
		}
		if i := start + sp; line[i-1] != ':' && bytes.IndexByte(line[start:i], '[') < 0 {
			if h != nil {
				h.set(line[start:], sp+1)
			}
			start = i + 1
		}
	}
	if c := lc.hdrs; c != nil {
		if tagLen, body, watched, ok := c.lookup(line[start:]); ok {
			lc.tagOff, lc.tagEnd, lc.bodyOff = start, start+tagLen, start+body
			lc.watched, lc.maskOK = watched, true
			lc.hdrOK = true
			return true
		}
		lc.hdrMiss = true
	}
	sp := bytes.IndexByte(line[start:], ' ')
	if sp < 0 {
		return false
	}
	i := start + sp
	// line[start:i] is "postfix/smtpd[123]:" or "dovecot:".
	end := i - 1
	if end-start < 1 || line[end] != ':' {
		return false
	}
	if line[end-1] == ']' {
		j := end - 2
		for j > start && line[j]-'0' <= 9 {
			j--
		}
		if j <= start || line[j] != '[' || j == end-2 {
			return false
		}
		end = j
	}
	lc.tagOff, lc.tagEnd = start, end
	lc.bodyOff = i + 1
	lc.hdrOK = true
	return true
}

// program matches syslog tags against a filter's program regex, remembering
// its answer for each tag seen: a log has few distinct tags, and after the
// first line of each the check is a map look-up.
type program struct {
	re    *regexp.Regexp // nil: the filter has no program
	known atomic.Pointer[map[string]bool]
	mu    sync.Mutex
}

// maxTags bounds the remembered tags; beyond it the regex runs every time.
const maxTags = 1024

func newProgram(re *regexp.Regexp) *program {
	p := &program{re: re}
	p.known.Store(&map[string]bool{})
	return p
}

func (p *program) matches(tag []byte) bool {
	if p == nil || p.re == nil {
		return false
	}
	if ok, seen := (*p.known.Load())[string(tag)]; seen {
		return ok
	}
	ok := p.re.Match(tag)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.known.Load()
	if len(old) < maxTags {
		m := make(map[string]bool, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[string(tag)] = ok
		p.known.Store(&m)
	}
	return ok
}

// text returns the part of the line rule r is matched against, and false if
// the line does not have its prefix. ends caches where each regex prefix
// ends: -2 not tried yet, -1 no match.
func (f *Filter) text(r *rule, lc *lineCtx, w watch, ends *[8]int) ([]byte, bool) {
	switch {
	case r.prefix == syslogPrefix:
		if !lc.watches(w.set, w.m, w.i) {
			return nil, false
		}
		return lc.line[lc.bodyOff:], true
	case r.prefix == noPrefix:
		lc.message()
		return lc.line[lc.msgOff:], true
	}
	lc.message()
	msg := lc.line[lc.msgOff:]
	i := r.prefix
	end := -2
	if i < len(ends) {
		end = ends[i]
	}
	if end == -2 { // not tried yet, or beyond the cache
		end = -1
		if loc := f.prefixes[i].FindIndex(msg); loc != nil {
			end = loc[1]
		}
		if i < len(ends) {
			ends[i] = end
		}
	}
	if end < 0 {
		return nil, false
	}
	return msg[end:], true
}

// watch names a filter as the i-th of a set, matched by m (nil: none), to
// tell whether it watches a line's syslog tag.
type watch struct {
	set *Set
	m   *Matcher
	i   int
}

// matchRules tries the filter's rules whose literal the line holds, in order.
// The filter is the i-th of s.
func (f *Filter) matchRules(lc *lineCtx, s *Set, m *Matcher, i int, found *litset) (event.Event, bool) {
	if f.litRules == nil {
		return f.matchEach(lc, s, m, i, found)
	}
	w := watch{s, m, i}
	ends := [8]int{-2, -2, -2, -2, -2, -2, -2, -2}
	// The candidates in the rules' order: lowest bit first.
	for mask := f.candidates(found); mask != 0; mask &= mask - 1 {
		r := f.rules[bits.TrailingZeros64(mask)]
		if ev, ok, done := f.tryRule(r, lc, w, &ends, found); done {
			return ev, ok
		}
	}
	return event.Event{}, false
}

// matchEach is matchRules for a filter of more than 64 rules: each rule's
// literals are looked up in found.
func (f *Filter) matchEach(lc *lineCtx, s *Set, m *Matcher, i int, found *litset) (event.Event, bool) {
	w := watch{s, m, i}
	ends := [8]int{-2, -2, -2, -2, -2, -2, -2, -2}
	for _, r := range f.rules {
		if !found.hasAny(r.lits) {
			continue
		}
		if ev, ok, done := f.tryRule(r, lc, w, &ends, found); done {
			return ev, ok
		}
	}
	return event.Event{}, false
}

// tryRule runs rule r on the line. done reports whether the line is decided
// by it (the rule matched): then ok tells whether it is an event, which it
// is not when the address is unusable or an ignore rule matches too.
func (f *Filter) tryRule(r *rule, lc *lineCtx, w watch, ends *[8]int, found *litset) (ev event.Event, ok, done bool) {
	text, ok := f.text(r, lc, w, ends)
	if !ok {
		return event.Event{}, false, false
	}
	var buf [maxFastCaps]int
	m := lc.find(r, text, &buf)
	if m == nil {
		return event.Event{}, false, false
	}
	addr, ok := parseAddr(text[m[2*r.host]:m[2*r.host+1]])
	if !ok {
		// A rule matched but its <HOST> is no usable address: the line
		// is not an event, and no later rule gets to reinterpret it.
		return event.Event{}, false, true
	}
	for _, ig := range f.ignores {
		if !found.hasAny(ig.lits) {
			continue
		}
		var igBuf [maxFastCaps]int
		if t, ok := f.text(ig, lc, w, ends); ok && lc.find(ig, t, &igBuf) != nil {
			return event.Event{}, false, true
		}
	}
	lc.timestamp()
	ev = event.Event{Time: lc.t, Addr: addr, Kind: r.kind, Filter: f.Name, Rule: r.index}
	if r.time >= 0 && m[2*r.time] >= 0 {
		ev.Time, _ = logtime.Parse(text[m[2*r.time]:m[2*r.time+1]], lc.ref)
	}
	if r.helo >= 0 && m[2*r.helo] >= 0 {
		ev.HELO = string(text[m[2*r.helo]:m[2*r.helo+1]])
	}
	if r.user >= 0 && m[2*r.user] >= 0 {
		ev.User = string(text[m[2*r.user]:m[2*r.user+1]])
	}
	return ev, true, true
}
