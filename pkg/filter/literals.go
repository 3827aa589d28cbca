package filter

import (
	"regexp/syntax"
	"strings"
)

// minLiteral is the shortest required substring a rule may be prefiltered
// on. Shorter ones would let most lines through to the regex.
const minLiteral = 4

// requiredLiteral returns the longest case-sensitive string that every match
// of re must contain, or "" if it cannot tell.
func requiredLiteral(re *syntax.Regexp) string {
	best := ""
	for _, s := range requiredLiterals(re) {
		if len(s) > len(best) {
			best = s
		}
	}
	return best
}

// requiredLiterals returns case-sensitive strings that every match of re
// must contain: the runs of literal text that no alternation, option or
// repetition of zero can skip.
func requiredLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		var out []string
		var run []rune
		flush := func() {
			if len(run) > 0 {
				out = append(out, string(run))
			}
			run = run[:0]
		}
		for _, sub := range re.Sub {
			if lit, ok := plainLiteral(sub); ok {
				run = append(run, lit...)
				continue
			}
			flush()
			out = append(out, requiredLiterals(sub)...)
		}
		flush()
		return out
	}
	return nil
}

// plainLiteral reports the runes of a case-sensitive literal, looking through
// captures, so that "a(b)c" yields "abc".
func plainLiteral(re *syntax.Regexp) ([]rune, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			return re.Rune, true
		}
	case syntax.OpCapture:
		return plainLiteral(re.Sub[0])
	}
	return nil, false
}

// maxExact bounds the strings exact and requiredSet work with.
const maxExact = 16

// requiredSet returns strings of which every match of re contains at least
// one, chosen so that the shortest of them is as long as it can find; nil if
// it finds none. Alternations of literal text become sets:
// "lost connection after (?:CONNECT|EHLO)" needs one of "lost connection
// after CONNECT" and "lost connection after EHLO".
func requiredSet(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		return []string{string(re.Rune)}
	case syntax.OpCapture, syntax.OpPlus:
		return requiredSet(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return requiredSet(re.Sub[0])
		}
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s := requiredSet(sub)
			if s == nil {
				return nil
			}
			out = union(out, s)
		}
		if len(out) > maxExact {
			return nil
		}
		return minimal(out)
	case syntax.OpConcat:
		var best, cur []string
		consider := func(s []string) {
			if s != nil && (best == nil || shortest(s) > shortest(best) || shortest(s) == shortest(best) && len(s) < len(best)) {
				best = s
			}
		}
		for _, sub := range re.Sub {
			if ex, ok := exact(sub); ok {
				if cur == nil {
					cur = ex
				} else if p := cross(cur, ex); len(p) <= maxExact {
					cur = p
				} else {
					consider(cur)
					cur = ex
				}
				continue
			}
			consider(cur)
			cur = nil
			consider(requiredSet(sub))
		}
		consider(cur)
		return minimal(best)
	}
	return nil
}

// minimal drops the strings of s that hold another string of s: a line
// that holds them holds that one too.
func minimal(s []string) []string {
	var out []string
	for i, x := range s {
		redundant := false
		for j, y := range s {
			if i != j && len(y) < len(x) && strings.Contains(x, y) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, x)
		}
	}
	return out
}

// exact returns every string that re matches, if they are few and re
// matches nothing else. Zero-width assertions count as the empty string.
func exact(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpCapture:
		return exact(re.Sub[0])
	case syntax.OpQuest:
		s, ok := exact(re.Sub[0])
		if !ok {
			return nil, false
		}
		return union(s, []string{""}), true
	case syntax.OpCharClass:
		var out []string
		for i := 0; i < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) == 4 {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			s, ok := exact(sub)
			if !ok {
				return nil, false
			}
			if out = union(out, s); len(out) > maxExact {
				return nil, false
			}
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			s, ok := exact(sub)
			if !ok {
				return nil, false
			}
			if out = cross(out, s); len(out) > maxExact {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// cross returns every string of a followed by one of b.
func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = union(out, []string{x + y})
		}
	}
	return out
}

// union appends to a the strings of b it does not hold yet.
func union(a, b []string) []string {
	for _, s := range b {
		dup := false
		for _, t := range a {
			dup = dup || s == t
		}
		if !dup {
			a = append(a, s)
		}
	}
	return a
}

// shortest returns the length of the shortest string of s.
func shortest(s []string) int {
	n := -1
	for _, x := range s {
		if n < 0 || len(x) < n {
			n = len(x)
		}
	}
	return n
}
