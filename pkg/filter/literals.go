package filter

import (
	"regexp/syntax"
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
