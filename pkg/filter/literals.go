package filter

import (
	"regexp/syntax"
	"strings"
)

// minLiteral is the shortest required substring a rule may be prefiltered
// on. Shorter ones would let most lines through to the regex.
const minLiteral = 4

// maxExact bounds the strings exact and requiredSet work with.
const maxExact = 16

// requiredSet returns strings of which every match of re contains at least
// one, chosen among candidateSets so that the shortest of them is as long as
// possible; nil if there is none.
func requiredSet(re *syntax.Regexp) []string {
	var best []string
	for _, s := range candidateSets(re) {
		if best == nil || shortest(s) > shortest(best) || shortest(s) == shortest(best) && len(s) < len(best) {
			best = s
		}
	}
	return minimal(best)
}

// candidateSets returns sets of strings such that every match of re
// contains a string of each set. Runs of literal text are sets of one;
// alternations of literal text become larger sets: "lost connection after
// (?:CONNECT|EHLO)" needs one of "lost connection after CONNECT" and "lost
// connection after EHLO".
func candidateSets(re *syntax.Regexp) [][]string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil
		}
		return [][]string{{string(re.Rune)}}
	case syntax.OpCapture, syntax.OpPlus:
		return candidateSets(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return candidateSets(re.Sub[0])
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
		return [][]string{minimal(out)}
	case syntax.OpConcat:
		var out [][]string
		var cur []string
		for _, sub := range re.Sub {
			if ex, ok := exact(sub); ok {
				if cur == nil {
					cur = ex
				} else if p := cross(cur, ex); len(p) <= maxExact {
					cur = p
				} else {
					out = append(out, cur)
					cur = ex
				}
				continue
			}
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			out = append(out, candidateSets(sub)...)
		}
		if cur != nil {
			out = append(out, cur)
		}
		return out
	}
	return nil
}

// givenLiteral reports whether every match of re contains lit: it is part
// of every string of one of re's candidate sets.
func givenLiteral(re *syntax.Regexp, lit string) bool {
	for _, set := range candidateSets(re) {
		all := len(set) > 0
		for _, s := range set {
			all = all && strings.Contains(s, lit)
		}
		if all {
			return true
		}
	}
	return false
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
