package filter

import (
	"encoding/binary"
	"regexp/syntax"
	"sync"
	"unicode"
)

// A fastProg matches one rule's regex on ASCII text faster than package
// regexp, with exactly its results: it is a backtracking matcher over bytes
// that tries alternatives in regexp's order of preference and remembers the
// states it has explored, as regexp's own backtracker does, so its first
// match is regexp's leftmost-first match, with the same submatches, in time
// linear in the text for a given program. What makes it faster is that a
// repeated character class ([\w.-]+) is one instruction run by a byte loop.
//
// Only ASCII text is matched here (where a byte is a rune, so byte and rune
// semantics agree); compileFast refuses regexes it cannot match exactly
// (non-ASCII literals, loops whose body can match the empty string), and the
// caller then uses package regexp. FuzzFastMatchesRegexp holds the two to
// the same answers.
type fastProg struct {
	insts []fastInst
	ncap  int // 2 * (number of groups + 1), as regexp's FindSubmatchIndex
	memo  int // number of instructions whose states are remembered
}

type fastOp uint8

const (
	fLit     fastOp = iota // the bytes lit
	fClass                 // one byte of set
	fRun                   // min to max (-1: any number) bytes of set, then next
	fSplit                 // try x, then y
	fJmp                   // go to x
	fSave                  // capture slot n := position
	fBegin                 // at the start of the text
	fEnd                   // at the end of the text
	fWordB                 // at an ASCII word boundary
	fNoWordB               // not at an ASCII word boundary
	fMatch                 // success
)

type fastInst struct {
	op       fastOp
	greedy   bool
	lit      []byte
	set      *byteSet
	min, max int
	x, y     int
	n        int
	memo     int // index of this instruction's states in the memo, or -1
	// For a run, what its continuation needs at the run's end: a byte
	// of follow (followSet), the end of the text (followEnd), or nothing
	// known (followAny). A run tries only the ends that pass.
	follow    uint8
	followSet *byteSet
	// det: a run whose continuation can only start where the run ends
	// (its first byte is never one of the run's, or it is the end of the
	// text): the run then has one way to go on, taken without recursion.
	det bool
}

// What a run's continuation needs first.
const (
	followAny = iota
	followSet
	followEnd
)

// fastMaxMemo bounds the memo, in bits; a longer text or larger program is
// left to package regexp.
const fastMaxMemo = 1 << 16

// compileFast compiles a regex (already anchored with ^) for the fast
// matcher, or returns nil if it cannot match it exactly.
func compileFast(expr string) *fastProg {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	c := &fastCompiler{p: &fastProg{ncap: 2 * (re.MaxCap() + 1)}}
	c.emit(fastInst{op: fSave, n: 0})
	if !c.compile(re) {
		return nil
	}
	c.emit(fastInst{op: fSave, n: 1})
	c.emit(fastInst{op: fMatch})
	for i := range c.p.insts {
		in := &c.p.insts[i]
		in.memo = -1
		if in.op == fSplit || in.op == fRun {
			in.memo = c.p.memo
			c.p.memo++
		}
		if in.op == fRun {
			in.follow, in.followSet = c.p.first(i + 1)
			in.det = in.follow == followEnd || in.follow == followSet && disjoint(in.set, in.followSet)
		}
	}
	return c.p
}

// first tells what the program needs first from pc on: a byte of a set, the
// end of the text, or nothing known. Captures and jumps are looked through.
func (p *fastProg) first(pc int) (uint8, *byteSet) {
	for steps := 0; steps < len(p.insts); steps++ {
		in := &p.insts[pc]
		switch in.op {
		case fSave:
			pc++
		case fJmp:
			pc = in.x
		case fLit:
			set := new(byteSet)
			set[in.lit[0]] = true
			return followSet, set
		case fClass:
			return followSet, in.set
		case fRun:
			if in.min > 0 {
				return followSet, in.set
			}
			return followAny, nil
		case fEnd:
			return followEnd, nil
		default:
			return followAny, nil
		}
	}
	return followAny, nil
}

// disjoint reports whether a and b have no byte in common.
func disjoint(a, b *byteSet) bool {
	for i := range a {
		if a[i] && b[i] {
			return false
		}
	}
	return true
}

// tryEnd reports whether a run's continuation can start at e.
func (in *fastInst) tryEnd(text []byte, e int) bool {
	switch in.follow {
	case followSet:
		return e < len(text) && in.followSet[text[e]]
	case followEnd:
		return e == len(text)
	}
	return true
}

type fastCompiler struct{ p *fastProg }

func (c *fastCompiler) emit(in fastInst) int {
	c.p.insts = append(c.p.insts, in)
	return len(c.p.insts) - 1
}

func (c *fastCompiler) pc() int { return len(c.p.insts) }

// compile appends instructions that match re and fall through.
func (c *fastCompiler) compile(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return true
	case syntax.OpLiteral:
		var lit []byte
		flush := func() {
			if len(lit) > 0 {
				c.emit(fastInst{op: fLit, lit: lit})
				lit = nil
			}
		}
		for _, r := range re.Rune {
			if r >= 0x80 {
				return false
			}
			if re.Flags&syntax.FoldCase != 0 && unicode.IsLetter(r) {
				flush()
				set := new(byteSet)
				// On ASCII text only the ASCII case variants can occur.
				set[unicode.ToLower(r)], set[unicode.ToUpper(r)] = true, true
				c.emit(fastInst{op: fClass, set: set})
				continue
			}
			lit = append(lit, byte(r))
		}
		flush()
		return true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		set, ok := asciiSet(re)
		if !ok {
			return false
		}
		c.emit(fastInst{op: fClass, set: set})
		return true
	case syntax.OpBeginText:
		c.emit(fastInst{op: fBegin})
		return true
	case syntax.OpEndText:
		c.emit(fastInst{op: fEnd})
		return true
	case syntax.OpWordBoundary:
		c.emit(fastInst{op: fWordB})
		return true
	case syntax.OpNoWordBoundary:
		c.emit(fastInst{op: fNoWordB})
		return true
	case syntax.OpCapture:
		c.emit(fastInst{op: fSave, n: 2 * re.Cap})
		if !c.compile(re.Sub[0]) {
			return false
		}
		c.emit(fastInst{op: fSave, n: 2*re.Cap + 1})
		return true
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !c.compile(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		var jumps []int
		for i, sub := range re.Sub {
			if i == len(re.Sub)-1 {
				if !c.compile(sub) {
					return false
				}
				break
			}
			split := c.emit(fastInst{op: fSplit})
			c.p.insts[split].x = c.pc()
			if !c.compile(sub) {
				return false
			}
			jumps = append(jumps, c.emit(fastInst{op: fJmp}))
			c.p.insts[split].y = c.pc()
		}
		for _, j := range jumps {
			c.p.insts[j].x = c.pc()
		}
		return true
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		greedy := re.Flags&syntax.NonGreedy == 0
		min, max := 0, -1
		switch re.Op {
		case syntax.OpPlus:
			min = 1
		case syntax.OpQuest:
			max = 1
		case syntax.OpRepeat:
			min, max = re.Min, re.Max
		}
		sub := re.Sub[0]
		if set, ok := singleByte(sub); ok {
			c.emit(fastInst{op: fRun, set: set, min: min, max: max, greedy: greedy})
			return true
		}
		if re.Op == syntax.OpRepeat {
			return false // Simplify leaves repeats only of single characters
		}
		if re.Op != syntax.OpQuest && nullable(sub) {
			return false // empty iterations: left to package regexp
		}
		split := func(body int, after int) fastInst {
			if greedy {
				return fastInst{op: fSplit, x: body, y: after}
			}
			return fastInst{op: fSplit, x: after, y: body}
		}
		switch re.Op {
		case syntax.OpQuest:
			s := c.emit(fastInst{op: fSplit})
			body := c.pc()
			if !c.compile(sub) {
				return false
			}
			c.p.insts[s] = split(body, c.pc())
		case syntax.OpStar:
			s := c.emit(fastInst{op: fSplit})
			body := c.pc()
			if !c.compile(sub) {
				return false
			}
			c.emit(fastInst{op: fJmp, x: s})
			c.p.insts[s] = split(body, c.pc())
		case syntax.OpPlus:
			body := c.pc()
			if !c.compile(sub) {
				return false
			}
			s := c.emit(fastInst{op: fSplit})
			c.p.insts[s] = split(body, c.pc())
		}
		return true
	}
	return false
}

// byteSet is a set of bytes. Only ASCII bytes are ever members: 256 entries
// let a byte index it without a bounds check.
type byteSet [256]bool

// asciiSet returns the ASCII members of a one-character regex. On ASCII
// text they are all that matters.
func asciiSet(re *syntax.Regexp) (*byteSet, bool) {
	set := new(byteSet)
	switch re.Op {
	case syntax.OpAnyChar:
		for i := 0; i < 0x80; i++ {
			set[i] = true
		}
	case syntax.OpAnyCharNotNL:
		for i := 0; i < 0x80; i++ {
			set[i] = i != '\n'
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1] && r < 128; r++ {
				set[r] = true
			}
		}
	case syntax.OpLiteral:
		if len(re.Rune) != 1 || re.Rune[0] >= 0x80 {
			return nil, false
		}
		r := re.Rune[0]
		set[r] = true
		if re.Flags&syntax.FoldCase != 0 && unicode.IsLetter(r) {
			set[unicode.ToLower(r)], set[unicode.ToUpper(r)] = true, true
		}
	default:
		return nil, false
	}
	return set, true
}

// singleByte reports whether re matches exactly one character, and which.
func singleByte(re *syntax.Regexp) (*byteSet, bool) {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL, syntax.OpLiteral:
		return asciiSet(re)
	}
	return nil, false
}

// nullable reports whether re can match the empty string.
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpCapture:
		return nullable(re.Sub[0])
	case syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !nullable(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if nullable(sub) {
				return true
			}
		}
		return false
	}
	return true // stars, quests, empty-width assertions, empty matches
}

// fastMachine is one match in progress.
type fastMachine struct {
	p     *fastProg
	text  []byte
	caps  []int
	memo  []uint64
	trail *[]capUndo // the captures to restore when a branch fails
}

// capUndo is a capture slot's value before a save, restored when the branch
// that saved fails.
type capUndo struct{ n, old int }

// fastScratch is the memory a match works in, reused between matches.
type fastScratch struct {
	memo  []uint64
	trail []capUndo
}

var fastScratchPool = sync.Pool{New: func() any { return new(fastScratch) }}

// match runs p on text, which must be ASCII, and writes the submatch
// positions into caps (len p.ncap). It reports false, without a result, if
// there is no match or the text is too long for the memo; ok tells which.
func (p *fastProg) match(text []byte, caps []int) (matched, ok bool) {
	sc := fastScratchPool.Get().(*fastScratch)
	matched, ok = p.matchIn(text, caps, sc)
	fastScratchPool.Put(sc)
	return matched, ok
}

// matchIn is match in the memory sc, grown as needed.
func (p *fastProg) matchIn(text []byte, caps []int, sc *fastScratch) (matched, ok bool) {
	bits := p.memo * (len(text) + 1)
	if bits > fastMaxMemo {
		return false, false
	}
	for i := range caps {
		caps[i] = -1
	}
	words := (bits + 63) / 64
	if cap(sc.memo) < words {
		sc.memo = make([]uint64, words)
	}
	memo := sc.memo[:words]
	clear(memo)
	sc.trail = sc.trail[:0]
	m := fastMachine{p: p, text: text, caps: caps, memo: memo, trail: &sc.trail}
	return m.run(0, 0), true
}

// undo restores the captures saved since the trail was mark long.
func (m *fastMachine) undo(mark int) {
	t := *m.trail
	for i := len(t) - 1; i >= mark; i-- {
		m.caps[t[i].n] = t[i].old
	}
	*m.trail = t[:mark]
}

// seen reports whether state (instruction with memo row k, pos) was explored
// before, and marks it explored. A state met again failed the first time (or
// the search would have ended), and fails again.
func (m *fastMachine) seen(k, pos int) bool {
	bit := k*(len(m.text)+1) + pos
	if m.memo[bit>>6]&(1<<(bit&63)) != 0 {
		return true
	}
	m.memo[bit>>6] |= 1 << (bit & 63)
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (m *fastMachine) atWordBoundary(pos int) bool {
	before := pos > 0 && isWordByte(m.text[pos-1])
	after := pos < len(m.text) && isWordByte(m.text[pos])
	return before != after
}

func (m *fastMachine) run(pc, pos int) bool {
	text := m.text
	for {
		in := &m.p.insts[pc]
		switch in.op {
		case fLit:
			if len(text)-pos < len(in.lit) || string(text[pos:pos+len(in.lit)]) != string(in.lit) {
				return false
			}
			pos += len(in.lit)
			pc++
		case fClass:
			if pos >= len(text) || !in.set[text[pos]] {
				return false
			}
			pos++
			pc++
		case fRun:
			set, limit := in.set, len(text)
			if in.max >= 0 && pos+in.max < limit {
				limit = pos + in.max
			}
			e := pos
			for e < limit && set[text[e]] {
				e++
			}
			n := e - pos
			if n < in.min {
				return false
			}
			if in.det {
				if !in.tryEnd(text, e) {
					return false
				}
				pos = e
				pc++
				continue
			}
			// The run's memo row remembers where its continuation was tried.
			mark := len(*m.trail)
			if in.greedy {
				for e := pos + n; e >= pos+in.min; e-- {
					if in.tryEnd(text, e) && !m.seen(in.memo, e) {
						if m.run(pc+1, e) {
							return true
						}
						m.undo(mark)
					}
				}
			} else {
				for e := pos + in.min; e <= pos+n; e++ {
					if in.tryEnd(text, e) && !m.seen(in.memo, e) {
						if m.run(pc+1, e) {
							return true
						}
						m.undo(mark)
					}
				}
			}
			return false
		case fSplit:
			// Every loop passes a split, so every state is explored once.
			if m.seen(in.memo, pos) {
				return false
			}
			mark := len(*m.trail)
			if m.run(in.x, pos) {
				return true
			}
			m.undo(mark)
			pc = in.y
		case fJmp:
			pc = in.x
		case fSave:
			*m.trail = append(*m.trail, capUndo{in.n, m.caps[in.n]})
			m.caps[in.n] = pos
			pc++
		case fBegin:
			if pos != 0 {
				return false
			}
			pc++
		case fEnd:
			if pos != len(text) {
				return false
			}
			pc++
		case fWordB:
			if !m.atWordBoundary(pos) {
				return false
			}
			pc++
		case fNoWordB:
			if m.atWordBoundary(pos) {
				return false
			}
			pc++
		case fMatch:
			return true
		}
	}
}

// isASCII reports whether b holds only bytes below 0x80.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
