// Package filter compiles filter files into matchers that turn log lines
// into events.
//
// A filter file is TOML:
//
//	description = "Postfix smtpd and postscreen"
//	prefix = '\S+ postfix(?:-[\w.-]+)?/(?:[\w.-]+/)*smtpd\[\d+\]: '
//
//	[[rule]]
//	event = "auth_failure"
//	regex = 'warning: [\w.-]+\[<HOST>\](?::\d+)?: SASL [\w-]+ authentication failed:'
//
//	[[ignore]]
//	regex = 'warning: [\w.-]+\[<HOST>\](?::\d+)?: SASL [\w-]+ authentication failed: Connection lost to authentication server'
//
// Each rule's regex is anchored: it must match from the start of the line's
// message, which is the line after its leading timestamp (see package
// logtime) or the whole line when it has none, with the filter's prefix (or
// the rule's own) in front. Tokens stand for named fields:
//
//	<HOST>  the client address (required, once): IPv4, IPv6 or IPv4-mapped
//	<HELO>  the HELO/EHLO name the client gave
//	<USER>  the user name the client tried
//
// <HELO> and <USER> match any text, as little as the rest of the rule allows:
// both are the attacker's to choose, so a rule anchors what follows them
// rather than restricting what they may contain (a rule that a strange name
// makes fail would let its sender go unseen).
//	<TIME>  a timestamp inside the line, for logs that do not start with one
//
// A rule may instead write the groups itself as (?P<host>...), (?P<helo>...),
// (?P<user>...) or (?P<time>...). An [[ignore]] rule is anchored the same way;
// a line that matches a rule and an ignore rule of the same filter yields
// nothing.
//
// Before any regex runs, every line is scanned once for the literal
// substrings that each rule requires (found in its regex), with an Aho-Corasick automaton over all rules of all
// filters of a Set. Lines that contain none cost one pass over their bytes
// and no allocation; only rules whose literal occurs are tried.
//
// Filters are pure: compiling and matching do no I/O, and a compiled Filter
// or Set is safe for concurrent use.
package filter

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unsafe"

	"github.com/BurntSushi/toml"

	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/logtime"
	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// spec is the TOML form of a filter file.
type spec struct {
	Description string       `toml:"description"`
	Prefix      string       `toml:"prefix"`
	Rules       []ruleSpec   `toml:"rule"`
	Ignores     []ignoreSpec `toml:"ignore"`
}

type ruleSpec struct {
	Event  string  `toml:"event"`
	Regex  string  `toml:"regex"`
	Prefix *string `toml:"prefix"`
	Note   string  `toml:"note"`
}

type ignoreSpec struct {
	Regex  string  `toml:"regex"`
	Prefix *string `toml:"prefix"`
	Note   string  `toml:"note"`
}

// Filter is a compiled filter file.
type Filter struct {
	// Name is the filter's name, the file name without ".toml".
	Name string
	// Description is the file's description.
	Description string

	rules   []*rule
	ignores []*rule
	set     *Set // a set of just this filter, for Match
}

// rule is one compiled [[rule]] or [[ignore]].
type rule struct {
	kind    event.Kind
	index   int
	re      *regexp.Regexp
	literal string
	lit     int32 // the literal's id in the set being built
	host    int   // submatch group numbers, -1 if absent
	helo    int
	user    int
	time    int
}

// Error is a problem with a filter file. It names the file, the line (0 when
// unknown), the rule and the reason.
type Error struct {
	File   string
	Line   int
	Rule   string // "rule 3", "ignore 1", or "" for the file as a whole
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Rule != "" {
		b.WriteString(": ")
		b.WriteString(e.Rule)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// tokens are the shorthands a rule's regex may use.
var tokens = []struct{ token, group, expansion string }{
	{"<HOST>", "host", `(?P<host>[0-9A-Fa-f:][0-9A-Fa-f:.]+)`},
	{"<HELO>", "helo", `(?P<helo>.*?)`},
	{"<USER>", "user", `(?P<user>.*?)`},
	{"<TIME>", "time", `(?P<time>(?:\d{4}-\d\d-\d\d[T ])?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)`},
}

// Compile compiles the filter file data. file names it in errors (a path or
// "embedded:postfix.toml"); name is the filter's name.
func Compile(name, file string, data []byte) (*Filter, error) {
	var sp spec
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&sp)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: pe.Position.Line, Reason: pe.Message}
		}
		return nil, &Error{File: file, Reason: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		path := make([]string, len(k))
		copy(path, k)
		return nil, &Error{File: file, Line: tomlpos.Locate(data, path...), Reason: fmt.Sprintf("unknown key %q", k.String())}
	}
	if len(sp.Rules) == 0 {
		return nil, &Error{File: file, Reason: "no [[rule]]"}
	}
	f := &Filter{Name: name, Description: sp.Description}
	fail := func(section string, i int, key, reason string) error {
		return &Error{
			File:   file,
			Line:   tomlpos.Locate(data, section, fmt.Sprint(i), key),
			Rule:   fmt.Sprintf("%s %d", section, i+1),
			Reason: reason,
		}
	}
	for i, rs := range sp.Rules {
		kind := event.Kind(rs.Event)
		if rs.Event == "" {
			return nil, fail("rule", i, "event", "event is missing")
		}
		if !kind.Valid() {
			return nil, fail("rule", i, "event", fmt.Sprintf("unknown event %q (known: %s)", rs.Event, knownKinds()))
		}
		r, key, err := compileRule(sp.Prefix, rs.Prefix, rs.Regex, true)
		if err != nil {
			return nil, fail("rule", i, key, err.Error())
		}
		r.kind, r.index = kind, i
		f.rules = append(f.rules, r)
	}
	for i, is := range sp.Ignores {
		r, key, err := compileRule(sp.Prefix, is.Prefix, is.Regex, false)
		if err != nil {
			return nil, fail("ignore", i, key, err.Error())
		}
		r.index = i
		f.ignores = append(f.ignores, r)
	}
	set, err := NewSet(f)
	if err != nil {
		return nil, &Error{File: file, Reason: err.Error()}
	}
	f.set = set
	return f, nil
}

func knownKinds() string {
	s := make([]string, len(event.Known))
	for i, k := range event.Known {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// compileRule builds one anchored regex and finds its literal. It returns
// the key the error is about.
func compileRule(filterPrefix string, rulePrefix *string, expr string, needHost bool) (*rule, string, error) {
	if expr == "" {
		return nil, "regex", errors.New("regex is missing")
	}
	prefix := filterPrefix
	if rulePrefix != nil {
		prefix = *rulePrefix
	}
	full := expr
	if prefix != "" {
		full = "(?:" + prefix + ")(?:" + expr + ")"
	}
	for _, t := range tokens {
		switch n := strings.Count(full, t.token); {
		case n > 1:
			return nil, "regex", fmt.Errorf("%s appears %d times", t.token, n)
		case n == 1 && strings.Contains(full, "(?P<"+t.group+">"):
			return nil, "regex", fmt.Errorf("both %s and a group named %q", t.token, t.group)
		}
		full = strings.Replace(full, t.token, t.expansion, 1)
		expr = strings.Replace(expr, t.token, t.expansion, 1)
	}
	full = "^" + full
	re, err := regexp.Compile(full)
	if err != nil {
		return nil, "regex", fmt.Errorf("regex: %v", err)
	}
	r := &rule{re: re, host: re.SubexpIndex("host"), helo: re.SubexpIndex("helo"), user: re.SubexpIndex("user"), time: re.SubexpIndex("time")}
	if needHost && r.host < 0 {
		return nil, "regex", errors.New("regex has no <HOST>")
	}
	// Prefer a literal of the rule's own text: the prefix's is shared by
	// every line of the daemon and would let them all through.
	for _, src := range []string{expr, full} {
		parsed, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			return nil, "regex", fmt.Errorf("regex: %v", err)
		}
		if r.literal = requiredLiteral(parsed.Simplify()); len(r.literal) >= minLiteral {
			break
		}
	}
	if len(r.literal) < minLiteral {
		return nil, "regex", fmt.Errorf("no literal text of at least %d bytes that every match contains (found %q); "+
			"write the rule so that it has one", minLiteral, r.literal)
	}
	return r, "", nil
}

// Rules returns how many rules the filter has.
func (f *Filter) Rules() int { return len(f.rules) }

// RuleEvent returns the event kind of rule i.
func (f *Filter) RuleEvent(i int) event.Kind { return f.rules[i].kind }

// Match returns the event that line holds, if any. ref is the time the line
// is known not to be much later than: now for a live log, the modification
// time of a file read offline; it also gives the location of times written
// without a zone. Match is safe for concurrent use and does not allocate for
// lines that hold no event.
func (f *Filter) Match(line []byte, ref time.Time) (event.Event, bool) {
	var found litset
	if !f.set.ac.scan(line, &found) {
		return event.Event{}, false
	}
	lt := lineTime{line: line, ref: ref}
	return f.set.matchFilter(0, &lt, &found)
}

// Set matches lines against several filters with one prefilter pass.
type Set struct {
	filters []*Filter
	ac      *automaton
}

// NewSet combines filters. It fails if together they have more distinct
// literals than the prefilter can track.
func NewSet(filters ...*Filter) (*Set, error) {
	ids := map[string]int32{}
	var lits []string
	s := &Set{}
	number := func(list []*rule) []*rule {
		out := make([]*rule, len(list))
		for i, r := range list {
			c := *r
			id, ok := ids[c.literal]
			if !ok {
				id = int32(len(lits))
				ids[c.literal] = id
				lits = append(lits, c.literal)
			}
			c.lit = id
			out[i] = &c
		}
		return out
	}
	for _, f := range filters {
		// Copies of the rules, so that each set numbers literals its own way.
		s.filters = append(s.filters, &Filter{
			Name: f.Name, Description: f.Description, set: f.set,
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
	var found litset
	if !s.ac.scan(line, &found) {
		return dst
	}
	lt := lineTime{line: line, ref: ref}
	for i := range s.filters {
		if ev, ok := s.matchFilter(i, &lt, &found); ok {
			dst = append(dst, ev)
		}
	}
	return dst
}

// lineTime parses a line's leading timestamp once, when first needed.
type lineTime struct {
	line   []byte
	ref    time.Time
	done   bool
	t      time.Time
	msgOff int
}

func (lt *lineTime) parse() {
	if !lt.done {
		lt.t, lt.msgOff, _ = logtime.ParsePrefix(lt.line, lt.ref)
		lt.done = true
	}
}

func (s *Set) matchFilter(fi int, lt *lineTime, found *litset) (event.Event, bool) {
	f := s.filters[fi]
	for _, r := range f.rules {
		if !found.has(r.lit) {
			continue
		}
		lt.parse()
		msg := lt.line[lt.msgOff:]
		m := r.re.FindSubmatchIndex(msg)
		if m == nil {
			continue
		}
		addr, ok := parseAddr(msg[m[2*r.host]:m[2*r.host+1]])
		if !ok {
			// A rule matched but its <HOST> is no usable address: the line
			// is not an event, and no later rule gets to reinterpret it.
			return event.Event{}, false
		}
		for _, ig := range f.ignores {
			if found.has(ig.lit) && ig.re.Match(msg) {
				return event.Event{}, false
			}
		}
		ev := event.Event{Time: lt.t, Addr: addr, Kind: r.kind, Filter: f.Name, Rule: r.index}
		if r.time >= 0 && m[2*r.time] >= 0 {
			t, ok := logtime.Parse(msg[m[2*r.time]:m[2*r.time+1]], lt.ref)
			if ok {
				ev.Time = t
			} else {
				ev.Time = time.Time{}
			}
		}
		if r.helo >= 0 && m[2*r.helo] >= 0 {
			ev.HELO = string(msg[m[2*r.helo]:m[2*r.helo+1]])
		}
		if r.user >= 0 && m[2*r.user] >= 0 {
			ev.User = string(msg[m[2*r.user]:m[2*r.user+1]])
		}
		return ev, true
	}
	return event.Event{}, false
}

// parseAddr parses a client address field. IPv4-mapped IPv6 addresses are
// unmapped; zones, the unspecified and multicast addresses are refused.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 45 {
		return netip.Addr{}, false
	}
	// The string shares b's memory only for the call: ParseAddr keeps no
	// reference to its input in the Addr it returns, and the error, which
	// would, is dropped here.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}
