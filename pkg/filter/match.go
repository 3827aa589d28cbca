package filter

import (
	"fmt"
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
	ac        *automaton
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
	s.ac = newAutomaton(lits)
	return s, nil
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
func (s *Set) Match(line []byte, ref time.Time, dst []event.Event) []event.Event {
	lc := lineCtx{line: line, ref: ref}
	text := line
	if s.allSyslog {
		// Every rule follows a syslog header: a line without one, or from a
		// program no filter watches, is done with before the scan, and the
		// scan covers only the message.
		if !lc.header() {
			return dst
		}
		watched := false
		for _, f := range s.filters {
			if f.program.matches(lc.tag()) {
				watched = true
				break
			}
		}
		if !watched {
			return dst
		}
		text = line[lc.bodyOff:]
	}
	var found litset
	if !s.ac.scan(text, &found) {
		return dst
	}
	for _, f := range s.filters {
		if ev, ok := f.matchRules(&lc, &found); ok {
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

	hdrDone bool
	hdrOK   bool
	tagOff  int // the syslog tag, without "[pid]"
	tagEnd  int
	bodyOff int // after the tag's ": "
}

// find runs rule r on text, a part of the line, and returns regexp's
// FindSubmatchIndex result, in buf when the fast matcher could run.
func (lc *lineCtx) find(r *rule, text []byte, buf *[maxFastCaps]int) []int {
	if r.fast != nil && r.fast.ncap <= len(buf) {
		if !lc.asciiDone {
			lc.ascii, lc.asciiDone = isASCII(lc.line), true
		}
		if lc.ascii {
			if matched, ok := r.fast.match(text, buf[:r.fast.ncap]); ok {
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
		lc.msgOff, _ = logtime.Len(lc.line)
		lc.offDone = true
	}
}

// timestamp parses the leading timestamp, for a line that yields an event.
func (lc *lineCtx) timestamp() {
	if !lc.tsDone {
		lc.t, lc.msgOff, _ = logtime.ParsePrefix(lc.line, lc.ref)
		lc.tsDone, lc.offDone = true, true
	}
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
	// The first word: the host name, or already the tag when it ends in
	// ':' or holds '['.
	i, bracket := lc.msgOff, false
	for i < len(line) && line[i] != ' ' {
		bracket = bracket || line[i] == '['
		i++
	}
	if i == lc.msgOff || i == len(line) {
		return false
	}
	start := lc.msgOff
	if line[i-1] != ':' && !bracket {
		start = i + 1
		for i = start; i < len(line) && line[i] != ' '; i++ {
		}
		if i == len(line) {
			return false
		}
	}
	// line[start:i] is "postfix/smtpd[123]:" or "dovecot:".
	end := i - 1
	if end-start < 1 || line[end] != ':' {
		return false
	}
	if line[end-1] == ']' {
		j := end - 2
		for j > start && line[j] >= '0' && line[j] <= '9' {
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
func (f *Filter) text(r *rule, lc *lineCtx, ends *[8]int) ([]byte, bool) {
	switch {
	case r.prefix == syslogPrefix:
		if !lc.header() || !f.program.matches(lc.tag()) {
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

// matchRules tries the filter's rules whose literal the line holds, in order.
func (f *Filter) matchRules(lc *lineCtx, found *litset) (event.Event, bool) {
	ends := [8]int{-2, -2, -2, -2, -2, -2, -2, -2}
	for _, r := range f.rules {
		if !found.hasAny(r.lits) {
			continue
		}
		text, ok := f.text(r, lc, &ends)
		if !ok {
			continue
		}
		var buf [maxFastCaps]int
		m := lc.find(r, text, &buf)
		if m == nil {
			continue
		}
		addr, ok := parseAddr(text[m[2*r.host]:m[2*r.host+1]])
		if !ok {
			// A rule matched but its <HOST> is no usable address: the line
			// is not an event, and no later rule gets to reinterpret it.
			return event.Event{}, false
		}
		for _, ig := range f.ignores {
			if !found.hasAny(ig.lits) {
				continue
			}
			var igBuf [maxFastCaps]int
			if t, ok := f.text(ig, lc, &ends); ok && lc.find(ig, t, &igBuf) != nil {
				return event.Event{}, false
			}
		}
		lc.timestamp()
		ev := event.Event{Time: lc.t, Addr: addr, Kind: r.kind, Filter: f.Name, Rule: r.index}
		if r.time >= 0 && m[2*r.time] >= 0 {
			ev.Time, _ = logtime.Parse(text[m[2*r.time]:m[2*r.time+1]], lc.ref)
		}
		if r.helo >= 0 && m[2*r.helo] >= 0 {
			ev.HELO = string(text[m[2*r.helo]:m[2*r.helo+1]])
		}
		if r.user >= 0 && m[2*r.user] >= 0 {
			ev.User = string(text[m[2*r.user]:m[2*r.user+1]])
		}
		return ev, true
	}
	return event.Event{}, false
}
