// Package filter compiles filter files into matchers that turn log lines
// into events.
//
// A filter file is TOML:
//
//	description = "Postfix smtpd and postscreen"
//	program = 'postfix(?:-[\w.-]+)?/(?:[\w.-]+/)*(?:smtpd|postscreen)'
//
//	[[rule]]
//	event = "auth_failure"
//	regex = 'warning: [\w.-]+\[<HOST>\](?::\d+)?: SASL [\w-]+ authentication failed:'
//
//	[[ignore]]
//	regex = 'warning: [\w.-]+\[[0-9A-Fa-f:.]+\](?::\d+)?: SASL [\w-]+ authentication failed: Connection lost to authentication server'
//
// Every rule is anchored. A line's message is the line after its leading
// timestamp (see package logtime), or the whole line when it has none.
//
// A filter for a program that logs through syslog names it with program, a
// regex that must match the whole syslog tag (without "[pid]"). The message
// must then start with "[host ]tag[pid]: ", which is parsed without a regex,
// and each rule's regex must match right after it. The answer for each
// distinct tag is remembered, so that a line of a program no filter watches
// costs a map look-up.
//
// Other filters give a prefix instead: a regex that must match at the start
// of the message, with each rule's regex right where it ends. A prefix is
// matched once per line, leftmost-first, however many rules use it, and may
// not hold tokens. A rule may set its own prefix (empty for none), which then
// replaces the filter's program or prefix.
//
// Tokens stand for named fields in a rule's regex:
//
//	<HOST>  the client address (required, once): IPv4, IPv6 or IPv4-mapped
//	<HELO>  the HELO/EHLO name the client gave
//	<USER>  the user name the client tried
//	<TIME>  a timestamp inside the line, for logs that do not start with one
//
// <HELO> and <USER> match any text, as little as the rest of the rule allows:
// both are the attacker's to choose, so a rule anchors what follows them
// rather than restricting what they may contain (a rule that a strange name
// makes fail would let its sender go unseen). A rule may instead write the
// groups itself as (?P<host>...), (?P<helo>...), (?P<user>...) or
// (?P<time>...). An [[ignore]] rule is anchored the same way; a line that
// matches a rule and an ignore rule of the same filter yields nothing.
//
// Before any regex runs, a line is scanned once for the literal text each
// rule requires, over all rules of all filters of a Set, by sampling 4-byte
// grams (see prefilter); only rules whose literal text occurs are tried. A rule's literal
// text is the longest run of plain text that every match of its own regex
// (without the prefix) contains, or a set of strings one of which every match
// contains, taken from alternations of plain text: "lost connection after
// (?:CONNECT|EHLO)" needs "lost connection after CONNECT" or "lost connection
// after EHLO". literal = "..." names a rarer text instead, which must be part
// of every string of such a set. A
// rule whose literal text can be shorter than 4 bytes is an error. Lines that
// hold no event cost no allocation.
//
// Filters are pure: compiling and matching do no I/O, and a compiled Filter
// or Set is safe for concurrent use. A Matcher, one per goroutine, matches
// the lines of one log faster: it remembers the last timestamp's minute and
// the syslog tags seen.
package filter

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"unsafe"

	"github.com/BurntSushi/toml"

	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// spec is the TOML form of a filter file.
type spec struct {
	Description string       `toml:"description"`
	Program     string       `toml:"program"`
	Prefix      string       `toml:"prefix"`
	Rules       []ruleSpec   `toml:"rule"`
	Ignores     []ignoreSpec `toml:"ignore"`
}

type ruleSpec struct {
	Event   string  `toml:"event"`
	Regex   string  `toml:"regex"`
	Prefix  *string `toml:"prefix"`
	Literal string  `toml:"literal"`
	Note    string  `toml:"note"`
}

type ignoreSpec struct {
	Regex   string  `toml:"regex"`
	Prefix  *string `toml:"prefix"`
	Literal string  `toml:"literal"`
	Note    string  `toml:"note"`
}

// Filter is a compiled filter file.
type Filter struct {
	// Name is the filter's name, the file name without ".toml".
	Name string
	// Description is the file's description.
	Description string

	rules   []*rule
	ignores []*rule
	// litRules[id] has bit j set when rule j needs literal id of the set
	// the filter belongs to; nil when the filter has more than 64 rules.
	litRules []uint64
	prefixes []*regexp.Regexp // distinct prefixes of the rules, anchored
	program  *program         // the syslog program the rules follow, if any
	set      *Set             // a set of just this filter, for Match
}

// rule is one compiled [[rule]] or [[ignore]].
type rule struct {
	kind     event.Kind
	index    int
	re       *regexp.Regexp
	fast     *fastProg // the same regex for the fast matcher, or nil
	prefix   int       // index into Filter.prefixes, or noPrefix or syslogPrefix
	literals []string  // the prefilter's: a line holds one of them, or no match
	lits     []int32   // their ids in the set being built
	host     int       // submatch group numbers, -1 if absent
	helo     int
	user     int
	time     int
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
	switch {
	case sp.Program != "" && sp.Prefix != "":
		return nil, &Error{File: file, Line: tomlpos.Locate(data, "prefix"), Reason: "program and prefix exclude each other"}
	case sp.Program != "":
		re, err := regexp.Compile("^(?:" + sp.Program + ")$")
		if err != nil {
			return nil, &Error{File: file, Line: tomlpos.Locate(data, "program"), Reason: fmt.Sprintf("program: %v", err)}
		}
		f.program = newProgram(re)
	}
	prefixIndex := map[string]int{}
	prefixOf := func(section string, i int, own *string) (int, error) {
		if own == nil && f.program != nil {
			return syslogPrefix, nil
		}
		p := sp.Prefix
		if own != nil {
			p = *own
		}
		if p == "" {
			return noPrefix, nil
		}
		if idx, ok := prefixIndex[p]; ok {
			return idx, nil
		}
		// A filter-level prefix's error is the file's; a rule's own, the rule's.
		failPrefix := func(reason string) error {
			if own == nil {
				return &Error{File: file, Line: tomlpos.Locate(data, "prefix"), Reason: "prefix: " + reason}
			}
			return fail(section, i, "prefix", "prefix: "+reason)
		}
		for _, t := range tokens {
			if strings.Contains(p, t.token) || strings.Contains(p, "(?P<"+t.group+">") {
				return 0, failPrefix(t.token + " belongs in the rule's regex")
			}
		}
		re, err := regexp.Compile("^(?:" + p + ")")
		if err != nil {
			return 0, failPrefix(err.Error())
		}
		prefixIndex[p] = len(f.prefixes)
		f.prefixes = append(f.prefixes, re)
		return prefixIndex[p], nil
	}
	for i, rs := range sp.Rules {
		kind := event.Kind(rs.Event)
		if rs.Event == "" {
			return nil, fail("rule", i, "event", "event is missing")
		}
		if !kind.Valid() {
			return nil, fail("rule", i, "event", fmt.Sprintf("unknown event %q (known: %s)", rs.Event, knownKinds()))
		}
		r, key, err := compileRule(rs.Regex, rs.Literal, true)
		if err != nil {
			return nil, fail("rule", i, key, err.Error())
		}
		if r.prefix, err = prefixOf("rule", i, rs.Prefix); err != nil {
			return nil, err
		}
		r.kind, r.index = kind, i
		f.rules = append(f.rules, r)
	}
	for i, is := range sp.Ignores {
		r, key, err := compileRule(is.Regex, is.Literal, false)
		if err != nil {
			return nil, fail("ignore", i, key, err.Error())
		}
		if r.prefix, err = prefixOf("ignore", i, is.Prefix); err != nil {
			return nil, err
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

// compileRule builds one rule's regex, anchored at the end of its prefix,
// and finds its literal. It returns the key the error is about.
func compileRule(expr, literal string, needHost bool) (*rule, string, error) {
	if expr == "" {
		return nil, "regex", errors.New("regex is missing")
	}
	for _, t := range tokens {
		switch n := strings.Count(expr, t.token); {
		case n > 1:
			return nil, "regex", fmt.Errorf("%s appears %d times", t.token, n)
		case n == 1 && strings.Contains(expr, "(?P<"+t.group+">"):
			return nil, "regex", fmt.Errorf("both %s and a group named %q", t.token, t.group)
		}
		expr = strings.Replace(expr, t.token, t.expansion, 1)
	}
	re, err := regexp.Compile("^(?:" + expr + ")")
	if err != nil {
		return nil, "regex", fmt.Errorf("regex: %v", err)
	}
	r := &rule{re: re, fast: compileFast("^(?:" + expr + ")"), host: re.SubexpIndex("host"), helo: re.SubexpIndex("helo"), user: re.SubexpIndex("user"), time: re.SubexpIndex("time")}
	if needHost && r.host < 0 {
		return nil, "regex", errors.New("regex has no <HOST>")
	}
	// The literal comes from the rule's own text, never the prefix's: that
	// is shared by every line of the program and would let them all through.
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, "regex", fmt.Errorf("regex: %v", err)
	}
	simple := parsed.Simplify()
	if literal != "" {
		if !givenLiteral(simple, literal) {
			return nil, "literal", fmt.Errorf("literal %q is not text that every match of the regex contains", literal)
		}
		r.literals = []string{literal}
	} else {
		r.literals = requiredSet(simple)
	}
	if shortest(r.literals) < minLiteral {
		return nil, "regex", fmt.Errorf("no literal text of at least %d bytes that every match contains (found %q); "+
			"write the rule so that it has one", minLiteral, r.literals)
	}
	return r, "", nil
}

// Rules returns how many rules the filter has.
func (f *Filter) Rules() int { return len(f.rules) }

// Syslog reports whether the filter reads syslog lines (it names a
// program): its lines start with a timestamp, and one that does not is a
// line with no usable time.
func (f *Filter) Syslog() bool { return f.program != nil }

// parseAddr parses a client address field. IPv4-mapped IPv6 addresses are
// unmapped; zones, the unspecified and multicast addresses are refused.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 45 {
		return netip.Addr{}, false
	}
	a, ok := parseIPv4(b)
	if !ok {
		// The string shares b's memory only for the call: ParseAddr keeps
		// no reference to its input in the Addr it returns, and the error,
		// which would, is dropped here.
		var err error
		a, err = netip.ParseAddr(unsafe.String(&b[0], len(b)))
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, false
		}
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4 parses a dotted quad as netip.ParseAddr does (1 to 3 digits a
// field, at most 255, no leading zero), faster; false means it is not one,
// and netip.ParseAddr decides.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	i := 0
	for field := range ip {
		if field > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		// One to three digits, no leading zero, at most 255.
		if i >= len(b) || b[i]-'0' > 9 {
			return netip.Addr{}, false
		}
		v := uint(b[i] - '0')
		i++
		for k := 1; k < 3 && i < len(b) && b[i]-'0' <= 9; k++ {
			if v == 0 {
				return netip.Addr{}, false
			}
			v = v*10 + uint(b[i]-'0')
			i++
		}
		if v > 255 {
			return netip.Addr{}, false
		}
		ip[field] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}
