package filter

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// prefilter finds which of a set of literals occur in a line, without
// looking at every byte: it samples one 4-byte gram every stride bytes.
//
// Every literal at least gramLen+stride-1 bytes long has stride consecutive
// 4-byte grams, at offsets w to w+stride-1 (the rarest such window, by a
// guess at how common its bytes are in log text). Wherever the literal
// occurs in a line, exactly one of those grams starts at a multiple of
// stride, so sampling the grams at positions 0, stride, 2*stride, ... meets
// it. A sampled gram is looked up in a bitmap of the registered grams'
// hashes; a hit is checked against the literals registered under that hash
// (the gram, then the literal at the position the gram's offset implies).
// Literals too short for the stride are searched with bytes.Index. Sampled
// positions are independent of each other, unlike the states of an automaton,
// so the processor overlaps their loads; on a 70-byte message of a mail log
// this is a few times faster than a byte-wise automaton.
type prefilter struct {
	lits   []string
	litb   [][]byte // lits, as bytes for bytes.Index
	stride int
	bits   uint   // log2 of the hash table size
	mask   uint32 // 2^bits - 1
	bitmap *[bitmapWords]uint64
	start  []uint32 // hash → first index into grams; start[h+1] ends it
	grams  []gramEntry
	short  []int32 // literals searched with bytes.Index
}

type gramEntry struct {
	gram uint32 // the 4 bytes, little-endian
	lit  int32
	off  int32 // where the gram starts in the literal
}

const (
	gramLen     = 4
	maxStride   = 8
	maxBits     = 16 // the largest hash table: 2^16 slots
	bitmapWords = 1 << maxBits / 64
)

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

// byteCost guesses how common a byte is in mail log text: the higher, the
// more common. Grams of rare bytes make fewer false hits.
var byteCost = func() (c [256]uint8) {
	for b := range c {
		c[b] = 2
	}
	for _, b := range []byte(".:=/[]-,;<>()_@'\"") {
		c[b] = 4
	}
	for b := '0'; b <= '9'; b++ {
		c[b] = 5
	}
	for b := 'A'; b <= 'Z'; b++ {
		c[b] = 3
	}
	for b := 'a'; b <= 'z'; b++ {
		c[b] = 6
	}
	for _, b := range []byte("etaoinsrhlcdmu") {
		c[b] = 8
	}
	c[' '] = 10
	return c
}()

func gramCost(g string) int {
	n := 0
	for i := 0; i < len(g); i++ {
		n += int(byteCost[g[i]])
	}
	return n
}

func newPrefilter(lits []string) *prefilter {
	p := &prefilter{lits: lits}
	for _, l := range lits {
		p.litb = append(p.litb, []byte(l))
	}
	// The stride: sampling costs about 1/stride per byte, and each literal
	// too short for it a bytes.Index over the line.
	best, bestCost := 1, 0.0
	for k := 1; k <= maxStride; k++ {
		short := 0
		for _, l := range lits {
			if len(l) < gramLen+k-1 {
				short++
			}
		}
		cost := 1/float64(k) + 0.25*float64(short)
		if k == 1 || cost < bestCost {
			best, bestCost = k, cost
		}
	}
	p.stride = best
	var entries []gramEntry
	for id, l := range lits {
		if len(l) < gramLen+p.stride-1 {
			p.short = append(p.short, int32(id))
			continue
		}
		// The window of stride grams with the lowest cost.
		w, wCost := 0, -1
		for s := 0; s+p.stride+gramLen-1 <= len(l); s++ {
			c := 0
			for o := s; o < s+p.stride; o++ {
				c += gramCost(l[o : o+gramLen])
			}
			if wCost < 0 || c < wCost {
				w, wCost = s, c
			}
		}
		for o := w; o < w+p.stride; o++ {
			entries = append(entries, gramEntry{
				gram: binary.LittleEndian.Uint32([]byte(l[o : o+gramLen])),
				lit:  int32(id),
				off:  int32(o),
			})
		}
	}
	// A table of at least 32 slots per gram keeps false hits rare; 2^16
	// slots (8 KiB of bitmap) at most.
	p.bits = 10
	for p.bits < maxBits && 1<<p.bits < 32*len(entries) {
		p.bits++
	}
	size := 1 << p.bits
	p.mask = uint32(size - 1)
	p.bitmap = new([bitmapWords]uint64)
	sort.SliceStable(entries, func(i, j int) bool { return p.hash(entries[i].gram) < p.hash(entries[j].gram) })
	p.grams = entries
	p.start = make([]uint32, size+1)
	for _, e := range entries {
		h := p.hash(e.gram)
		p.bitmap[h>>6] |= 1 << (h & 63)
		p.start[h+1]++
	}
	for h := 1; h <= size; h++ {
		p.start[h] += p.start[h-1]
	}
	return p
}

// hash returns the slot of gram g: the low bits of the top 16 bits of a
// 64-bit multiplicative hash, which all of g's bits stir (next computes it
// inline).
func (p *prefilter) hash(g uint32) uint32 {
	return uint32(uint64(g)*0x9E3779B97F4A7C15>>48) & p.mask
}

// scan records in found every literal that occurs in line and reports
// whether there was any.
func (p *prefilter) scan(line []byte, found *litset) bool {
	any := false
	for _, id := range p.short {
		if bytes.Contains(line, p.litb[id]) {
			found.add(id)
			any = true
		}
	}
	if len(p.grams) == 0 {
		return any
	}
	for i := 0; ; i += p.stride {
		var g, h uint32
		if i, g, h = p.next(line, i); i < 0 {
			return any
		}
		if p.verify(line, i, g, h, found) {
			any = true
		}
	}
}

// next returns the first sampled position from i on whose gram's hash is in
// the bitmap, with the gram and the hash; -1 if there is none.
func (p *prefilter) next(line []byte, i int) (int, uint32, uint32) {
	k, mask, bm := p.stride, p.mask, p.bitmap
	for ; i+gramLen <= len(line); i += k {
		b := line[i : i+gramLen : i+gramLen]
		g := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		h := uint32(uint64(g)*0x9E3779B97F4A7C15>>48) & mask
		if bm[h>>6&(bitmapWords-1)]&(1<<(h&63)) != 0 {
			return i, g, h
		}
	}
	return -1, 0, 0
}

// verify checks the literals registered under hash h against line, where
// gram g was sampled at i.
func (p *prefilter) verify(line []byte, i int, g, h uint32, found *litset) bool {
	any := false
	for _, e := range p.grams[p.start[h]:p.start[h+1]] {
		if e.gram != g || found.has(e.lit) {
			continue
		}
		l := p.lits[e.lit]
		s := i - int(e.off)
		if s >= 0 && s+len(l) <= len(line) && string(line[s:s+len(l)]) == l {
			found.add(e.lit)
			any = true
		}
	}
	return any
}
