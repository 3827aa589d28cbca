package filter

// automaton finds which of a set of literals occur in a line, in one pass,
// with a dense Aho-Corasick DFA over byte equivalence classes. A scan costs
// two table loads per byte and never allocates.
type automaton struct {
	class  [256]int32 // byte -> equivalence class
	nclass int
	// delta[s+class] is the next state after state s, where a state is
	// its row's offset (state number * nclass), stored as ^offset (a
	// negative number) when the state ends a literal.
	delta    []int32
	outStart []int32 // state number -> first index into out, or -1
	out      []int32 // literal ids, each state's list ended by -1
}

// maxLiterals bounds the literals of one set so that a scan can record them
// in a fixed-size bitset on the stack.
const maxLiterals = 64 * len(litset{})

// litset is a bitset of literal ids.
type litset [8]uint64

func (s *litset) add(id int32)      { s[id>>6] |= 1 << (uint(id) & 63) }
func (s *litset) has(id int32) bool { return s[id>>6]&(1<<(uint(id)&63)) != 0 }

// hasAny reports whether s holds one of ids.
func (s *litset) hasAny(ids []int32) bool {
	for _, id := range ids {
		if s.has(id) {
			return true
		}
	}
	return false
}

func newAutomaton(lits []string) *automaton {
	a := &automaton{}
	// Byte classes: every byte that appears in a literal gets its own class;
	// all other bytes share class 0, which always leads back to the root.
	var used [256]bool
	for _, l := range lits {
		for i := 0; i < len(l); i++ {
			used[l[i]] = true
		}
	}
	a.nclass = 1
	for b := 0; b < 256; b++ {
		if used[b] {
			a.class[b] = int32(a.nclass)
			a.nclass++
		}
	}
	// Trie.
	type node struct {
		next map[int32]int32
		fail int32
		outs []int32
	}
	nodes := []node{{next: map[int32]int32{}}}
	for id, l := range lits {
		s := int32(0)
		for i := 0; i < len(l); i++ {
			c := a.class[l[i]]
			n, ok := nodes[s].next[c]
			if !ok {
				n = int32(len(nodes))
				nodes = append(nodes, node{next: map[int32]int32{}})
				nodes[s].next[c] = n
			}
			s = n
		}
		nodes[s].outs = append(nodes[s].outs, int32(id))
	}
	// Breadth-first: failure links and the dense transition table.
	a.delta = make([]int32, len(nodes)*a.nclass)
	queue := []int32{}
	for c := 0; c < a.nclass; c++ {
		if n, ok := nodes[0].next[int32(c)]; ok {
			a.delta[c] = n
			nodes[n].fail = 0
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		nodes[s].outs = append(nodes[s].outs, nodes[f].outs...)
		for c := 0; c < a.nclass; c++ {
			if n, ok := nodes[s].next[int32(c)]; ok {
				nodes[n].fail = a.delta[int(f)*a.nclass+c]
				a.delta[int(s)*a.nclass+c] = n
				queue = append(queue, n)
			} else {
				a.delta[int(s)*a.nclass+c] = a.delta[int(f)*a.nclass+c]
			}
		}
	}
	a.outStart = make([]int32, len(nodes))
	for s := range nodes {
		a.outStart[s] = -1
		if len(nodes[s].outs) > 0 {
			a.outStart[s] = int32(len(a.out))
			a.out = append(a.out, nodes[s].outs...)
			a.out = append(a.out, -1)
		}
	}
	// Premultiply the states and mark those that end a literal.
	for i, n := range a.delta {
		off := n * int32(a.nclass)
		if a.outStart[n] >= 0 {
			off = ^off
		}
		a.delta[i] = off
	}
	return a
}

// scan records in found every literal that occurs in line and reports
// whether there was any.
func (a *automaton) scan(line []byte, found *litset) bool {
	any := false
	s := int32(0)
	delta, class := a.delta, &a.class
	for _, b := range line {
		s = delta[s+class[b]]
		if s < 0 {
			s = ^s
			for o := a.outStart[s/int32(a.nclass)]; a.out[o] >= 0; o++ {
				found.add(a.out[o])
			}
			any = true
		}
	}
	return any
}
