package filter

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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
	fLit8                  // the bytes lit, at most 8 of them: one word compare
	fClass                 // one byte of set
	fRun                   // min to max (-1: any number) bytes of set, then next
	fRunDet                // a det fRun scanned byte by byte (scanSet)
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
	// For a literal, its bytes as little-endian words, and the mask of
	// the bytes the last word has.
	words []uint64
	mask  uint64
	// For a run, what its continuation needs at the run's end; a run
	// tries only the ends that it admits. followByte is the one byte it
	// admits, or -1 when it admits more or other than one byte.
	follow     *admitSet
	followByte int
	// det: a run whose continuation can only start where the run ends
	// (its first byte is never one of the run's, or it is the end of the
	// text): the run then has one way to go on, taken without recursion.
	det bool
	// scan tells how a run finds its longest extent: byte by byte
	// (scanSet), at once (scanAll: the set holds every ASCII byte), or by
	// looking for the one ASCII byte the set lacks, stop (scanNot).
	scan uint8
	stop byte
	// For a split, what each branch needs first: a branch that cannot
	// start at the position is not tried.
	firstX, firstY *admitSet
}

// admit is what a part of a program can start with besides its first
// bytes (kept apart, as asciiBits): the end of the text, or anything (when
// it starts with an assertion or the match).
type admit struct {
	end bool
	any bool
}

// admitSet is an admit as a table, for the matcher: entry c for a byte c
// at the position, entry 256 for the end of the text. A table look-up is
// a few instructions where admit's three cases cost a dozen, and the
// checks run at every run end and split.
type admitSet [257]bool

// admitTables holds the admitSets built so far, shared by every program:
// a filter's rules need few distinct ones, and building each costs a pass
// over 257 entries at start-up.
var admitTables struct {
	sync.Mutex
	m map[admitKey]*admitSet
}

// admitKey is what an admitSet is built from.
type admitKey struct {
	bits     asciiBits
	end, any bool
}

// table returns the admitSet of the bytes b and a's end and any.
func (a *admit) table(b asciiBits) *admitSet {
	k := admitKey{b, a.end, a.any}
	if a.any {
		k = admitKey{any: true}
	}
	admitTables.Lock()
	defer admitTables.Unlock()
	if t, ok := admitTables.m[k]; ok {
		return t
	}
	t := new(admitSet)
	for c := range 256 {
		t[c] = k.any || c < 0x80 && b[c>>6]&(1<<(c&63)) != 0
	}
	t[256] = k.any || k.end
	if admitTables.m == nil {
		admitTables.m = map[admitKey]*admitSet{}
	}
	admitTables.m[k] = t
	return t
}

// ok reports whether text at pos may be what a holds.
func (a *admitSet) ok(text []byte, pos int) bool {
	if uint(pos) < uint(len(text)) {
		return a[text[pos]]
	}
	return a[256]
}

// asciiBits is a set of ASCII bytes as a bitmap, for compiling.
type asciiBits [2]uint64

func (b *asciiBits) add(c byte) { b[c>>6&1] |= 1 << (c & 63) }

func (b asciiBits) count() int { return bits.OnesCount64(b[0]) + bits.OnesCount64(b[1]) }

// bitsOf returns the members of set.
func bitsOf(set *byteSet) asciiBits {
	var b asciiBits
	for c := byte(0); c < 0x80; c++ {
		if set[c] {
			b.add(c)
		}
	}
	return b
}

// How a run finds its longest extent.
const (
	scanSet = iota
	scanAll
	scanNot
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
	if !anchored(re) {
		// The matcher tries the text's start only. A rule whose regex
		// closes the "^(?:" it is wrapped in ("a)|(b") has a branch that
		// may match further on: package regexp searches for it.
		return nil
	}
	c := &fastCompiler{p: &fastProg{ncap: 2 * (re.MaxCap() + 1)}}
	c.emit(fastInst{op: fSave, n: 0})
	if !c.compile(re) {
		return nil
	}
	c.emit(fastInst{op: fSave, n: 1})
	c.emit(fastInst{op: fMatch})
	// The members of each class and run, and each literal's first byte.
	sets := make([]asciiBits, len(c.p.insts))
	for i := range c.p.insts {
		switch in := &c.p.insts[i]; in.op {
		case fClass, fRun:
			sets[i] = bitsOf(in.set)
		case fLit:
			sets[i].add(in.lit[0])
		}
	}
	visited := make([]bool, len(c.p.insts))
	first := func(pc int) (asciiBits, admit) {
		clear(visited)
		var b asciiBits
		var a admit
		c.p.first(pc, sets, visited, &b, &a)
		return b, a
	}
	table := func(pc int) *admitSet {
		b, a := first(pc)
		return a.table(b)
	}
	for i := range c.p.insts {
		in := &c.p.insts[i]
		in.memo = -1
		switch in.op {
		case fSplit:
			in.memo = c.p.memo
			c.p.memo++
			in.firstX, in.firstY = table(in.x), table(in.y)
		case fRun:
			in.memo = c.p.memo
			c.p.memo++
			follow, a := first(i + 1)
			in.follow = a.table(follow)
			in.det = !a.any && follow[0]&sets[i][0] == 0 && follow[1]&sets[i][1] == 0
			in.followByte = -1
			if !a.any && !a.end && follow.count() == 1 {
				in.followByte = bits.TrailingZeros64(follow[0])
				if follow[0] == 0 {
					in.followByte = 64 + bits.TrailingZeros64(follow[1])
				}
			}
			missing := asciiBits{^sets[i][0], ^sets[i][1]}
			switch missing.count() {
			case 0:
				in.scan = scanAll
			case 1:
				in.scan, in.stop = scanNot, byte(bits.TrailingZeros64(missing[0]))
				if missing[0] == 0 {
					in.stop = byte(64 + bits.TrailingZeros64(missing[1]))
				}
			}
		case fLit:
			for j := 0; j < len(in.lit); j += 8 {
				var w [8]byte
				n := copy(w[:], in.lit[j:])
				in.words = append(in.words, binary.LittleEndian.Uint64(w[:]))
				in.mask = ^uint64(0) >> (64 - 8*n)
			}
		}
	}
	// The common cases get ops of their own, so that the matcher's loop
	// decides them once here instead of at every step.
	for i := range c.p.insts {
		switch in := &c.p.insts[i]; {
		case in.op == fLit && len(in.lit) <= 8:
			in.op = fLit8
		case in.op == fRun && in.det && in.scan == scanSet:
			in.op = fRunDet
		}
	}
	return c.p
}

// anchored reports whether every match of re starts at the start of the
// text.
func anchored(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginText:
		return true
	case syntax.OpConcat:
		return len(re.Sub) > 0 && anchored(re.Sub[0])
	case syntax.OpCapture:
		return anchored(re.Sub[0])
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !anchored(sub) {
				return false
			}
		}
		return true
	}
	return false
}

// first adds to b and a what the program can start with from pc on, given
// the members of each instruction's set. Captures and jumps are looked
// through, and both branches of a split.
func (p *fastProg) first(pc int, sets []asciiBits, visited []bool, b *asciiBits, a *admit) {
	for !visited[pc] {
		visited[pc] = true
		in := &p.insts[pc]
		switch in.op {
		case fSave:
			pc++
		case fJmp:
			pc = in.x
		case fSplit:
			p.first(in.x, sets, visited, b, a)
			pc = in.y
		case fLit, fClass:
			b[0], b[1] = b[0]|sets[pc][0], b[1]|sets[pc][1]
			return
		case fRun:
			b[0], b[1] = b[0]|sets[pc][0], b[1]|sets[pc][1]
			if in.min > 0 {
				return
			}
			pc++
		case fEnd:
			a.end = true
			return
		default: // assertions and the match
			a.any = true
			return
		}
	}
}

// runEnd returns where the longest run of in's set from pos, but not past
// limit, ends. text is ASCII.
func (in *fastInst) runEnd(text []byte, pos, limit int) int {
	switch in.scan {
	case scanAll:
		return limit
	case scanNot:
		if j := bytes.IndexByte(text[pos:limit], in.stop); j >= 0 {
			return pos + j
		}
		return limit
	}
	set := in.set
	for i, c := range text[pos:limit] {
		if !set[c] {
			return pos + i
		}
	}
	return limit
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
	// depth counts the branches being tried (the recursive calls of run):
	// at 0 a failure fails the whole match, whose captures are then not
	// read, so a save needs no entry on the trail.
	depth int
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
	text, insts := m.text, m.p.insts
	for {
		in := &insts[pc]
		switch in.op {
		case fLit8:
			// The literal's word against the next 8 bytes, or, near the
			// end of the text, against the 8 bytes that end where the
			// literal would.
			n := len(in.lit)
			if pos+8 <= len(text) {
				if binary.LittleEndian.Uint64(text[pos:pos+8])&in.mask != in.words[0] {
					return false
				}
			} else if !in.litNearEnd(text, pos) {
				return false
			}
			pos += n
			pc++
		case fRunDet:
			// A run with one way to go on, its set looked up byte by byte:
			// runEnd's scanSet loop, inline.
			limit := len(text)
			if in.max >= 0 && pos+in.max < limit {
				limit = pos + in.max
			}
			// An index from 0 and a nil check before the loop keep bounds
			// and nil checks out of it.
			set, t, i := in.set, text[pos:limit], 0
			_ = set[0]
			for i < len(t) && set[t[i]] {
				i++
			}
			e := pos + i
			if e < pos+in.min || !in.follow.ok(text, e) {
				return false
			}
			pos = e
			pc++
		case fLit:
			n := len(in.lit)
			switch rest := len(text) - pos; {
			case rest < n:
				return false
			case n <= 8 && rest >= 8:
				if binary.LittleEndian.Uint64(text[pos:])&in.mask != in.words[0] {
					return false
				}
			case rest >= 8*len(in.words):
				// 8 bytes at a time, the last word masked.
				t := text[pos:]
				last := len(in.words) - 1
				for j, w := range in.words[:last] {
					if binary.LittleEndian.Uint64(t[8*j:]) != w {
						return false
					}
				}
				if binary.LittleEndian.Uint64(t[8*last:])&in.mask != in.words[last] {
					return false
				}
			case string(text[pos:pos+n]) != string(in.lit):
				return false
			}
			pos += n
			pc++
		case fClass:
			if pos >= len(text) || !in.set[text[pos]] {
				return false
			}
			pos++
			pc++
		case fRun:
			limit := len(text)
			if in.max >= 0 && pos+in.max < limit {
				limit = pos + in.max
			}
			lo := pos + in.min
			if lo > limit {
				return false
			}
			if in.det || in.greedy || in.scan != scanSet {
				// The longest run first.
				e := in.runEnd(text, pos, limit)
				if e < lo {
					return false
				}
				if in.det {
					if !in.follow.ok(text, e) {
						return false
					}
					pos = e
					pc++
					continue
				}
				if in.greedy {
					return m.runDown(in, pc, lo, e)
				}
				return m.runUp(in, pc, lo, e)
			}
			// A lazy run of a set that takes a byte loop: the shortest
			// first, grown a byte at a time, without looking further
			// than needed.
			set := in.set
			for e := pos; e < lo; e++ {
				if !set[text[e]] {
					return false
				}
			}
			mark := len(*m.trail)
			for e := lo; ; e++ {
				if in.follow.ok(text, e) && !m.seen(in.memo, e) {
					m.depth++
					if m.run(pc+1, e) {
						return true
					}
					m.depth--
					m.undo(mark)
				}
				if e >= limit || !set[text[e]] {
					return false
				}
			}
		case fSplit:
			// Every loop passes a split, so every state is explored once.
			if m.seen(in.memo, pos) {
				return false
			}
			// A branch that cannot start here is not tried; when only
			// one can, it is taken without recursion.
			if !in.firstX.ok(text, pos) {
				pc = in.y
				continue
			}
			if !in.firstY.ok(text, pos) {
				pc = in.x
				continue
			}
			mark := len(*m.trail)
			m.depth++
			if m.run(in.x, pos) {
				return true
			}
			m.depth--
			m.undo(mark)
			pc = in.y
		case fJmp:
			pc = in.x
		case fSave:
			if m.depth > 0 {
				*m.trail = append(*m.trail, capUndo{in.n, m.caps[in.n]})
			}
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

// litNearEnd reports whether text holds in's literal (at most 8 bytes) at
// pos, where fewer than 8 bytes are left: the word compared is the one that
// ends where the literal would, shifted down, when the text is that long.
func (in *fastInst) litNearEnd(text []byte, pos int) bool {
	n := len(in.lit)
	end := pos + n
	if end > len(text) {
		return false
	}
	if end >= 8 {
		return binary.LittleEndian.Uint64(text[end-8:end])>>(64-8*n) == in.words[0]
	}
	return string(text[pos:end]) == string(in.lit)
}

// runDown tries the continuation of the greedy run in (at pc) at each end
// from hi down to lo that its continuation admits.
func (m *fastMachine) runDown(in *fastInst, pc, lo, hi int) bool {
	text := m.text
	mark := len(*m.trail)
	for e := hi; e >= lo; e-- {
		if in.followByte >= 0 {
			// Straight to the last end before e that has the byte.
			j := bytes.LastIndexByte(text[lo:min(e+1, len(text))], byte(in.followByte))
			if j < 0 {
				return false
			}
			e = lo + j
		} else if !in.follow.ok(text, e) {
			continue
		}
		if !m.seen(in.memo, e) {
			m.depth++
			if m.run(pc+1, e) {
				return true
			}
			m.depth--
			m.undo(mark)
		}
	}
	return false
}

// runUp tries the continuation of the lazy run in (at pc) at each end from
// lo up to hi that its continuation admits.
func (m *fastMachine) runUp(in *fastInst, pc, lo, hi int) bool {
	text := m.text
	mark := len(*m.trail)
	for e := lo; e <= hi; e++ {
		if in.followByte >= 0 {
			// Straight to the next end from e that has the byte.
			if e >= len(text) {
				return false
			}
			j := bytes.IndexByte(text[e:min(hi+1, len(text))], byte(in.followByte))
			if j < 0 {
				return false
			}
			e += j
		} else if !in.follow.ok(text, e) {
			continue
		}
		if !m.seen(in.memo, e) {
			m.depth++
			if m.run(pc+1, e) {
				return true
			}
			m.depth--
			m.undo(mark)
		}
	}
	return false
}

// isASCII reports whether b holds only bytes below 0x80.
func isASCII(b []byte) bool {
	var or uint64
	for len(b) >= 32 {
		or |= binary.LittleEndian.Uint64(b[0:8]) | binary.LittleEndian.Uint64(b[8:16]) |
			binary.LittleEndian.Uint64(b[16:24]) | binary.LittleEndian.Uint64(b[24:32])
		b = b[32:]
	}
	for len(b) >= 8 {
		or |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		or |= uint64(c)
	}
	return or&0x8080808080808080 == 0
}
