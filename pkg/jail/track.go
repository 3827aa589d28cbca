package jail

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// The tracked addresses live in tables without pointers, so that the
// garbage collector never scans them, and that grow in fixed-size chunks,
// so that growing leaves no copy behind:
//
//   - slots: one track per address, in chunks of chunkLen; a track holds
//     the key, its links in the recency list and one strike;
//   - pools: the further strikes of an address, side by side in a block of
//     its pool; pool k has blocks of c0<<k strikes (c0 is max_strikes-1, at
//     most 4), in chunks of about 64 KiB. An address outgrowing its block
//     moves to the next pool's;
//   - index: an open-addressing hash table from key to slot, 8 bytes an
//     entry, at most 3/4 full; the only table that is copied when it grows.
//
// A tracked address with one strike costs 40 bytes of slot and 11 to 21 of
// index; with more, a block of 16 bytes a strike (and 4 of header). Free
// slots and blocks are chained in free lists and reused; the tables never
// hold more than MaxTracked addresses' worth. The order of an address's
// strikes is not kept: nothing depends on it.

// addrKey is what strikes are counted under (see Jail.key) as 16 bytes:
// IPv4 as IPv4-mapped IPv6, IPv6 without its zone.
type addrKey struct{ hi, lo uint64 }

func keyOf(a netip.Addr) addrKey {
	b := a.As16()
	return addrKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// strike is one counted event.
type strike struct {
	t    int64 // unix nanoseconds
	w    uint16
	kind uint8
}

// track is a tracked address: 40 bytes.
type track struct {
	key        addrKey
	prev, next int32 // recency list (head is the stalest); next chains free slots
	t          int64 // a strike, inline
	w          uint16
	kind       uint8
	pool       uint8 // the pool of blk
	blk        int32 // the block of the further strikes; -1: none
}

const (
	chunkBits   = 10
	chunkLen    = 1 << chunkBits // tracks per chunk (40 KiB)
	chunkStrike = 1 << 12        // strikes per chunk of blocks, about
	maxC0       = 4              // strikes per block of the first pool at most
	minIndex    = 1 << 10        // entries of the smallest index
	presize     = 1 << 16        // MaxTracked up to which the index is made full size at once
)

// slots holds the tracks.
type slots struct {
	chunks []*[chunkLen]track
	n      int32 // tracks made
	free   int32 // free list through next; -1: empty
}

func (s *slots) at(i int32) *track { return &s.chunks[i>>chunkBits][i&(chunkLen-1)] }

// alloc returns a free track's number.
func (s *slots) alloc() int32 {
	if i := s.free; i >= 0 {
		s.free = s.at(i).next
		return i
	}
	i := s.n
	if int(i>>chunkBits) == len(s.chunks) {
		s.chunks = append(s.chunks, new([chunkLen]track))
	}
	s.n++
	return i
}

func (s *slots) release(i int32) {
	s.at(i).next = s.free
	s.free = i
}

// pool holds blocks of c strikes, 1<<shift blocks a chunk.
type pool struct {
	c      int
	shift  uint
	used   [][]int32  // per block: strikes in use; of a free block, the next free one
	chunks [][]strike // per chunk: its blocks' strikes
	n      int32      // blocks made
	free   int32      // free list; -1: empty
}

func newPool(c int) *pool {
	p := &pool{c: c, free: -1}
	for c<<(p.shift+1) <= chunkStrike {
		p.shift++
	}
	return p
}

// block returns block b's strikes in use (with room for c) and where its
// count is.
func (p *pool) block(b int32) ([]strike, *int32) {
	k, o := b>>p.shift, int(b&(1<<p.shift-1))
	n := &p.used[k][o]
	return p.chunks[k][o*p.c : o*p.c+int(*n) : (o+1)*p.c], n
}

func (p *pool) alloc() int32 {
	if b := p.free; b >= 0 {
		n := &p.used[b>>p.shift][b&(1<<p.shift-1)]
		p.free, *n = *n, 0
		return b
	}
	b := p.n
	if int(b>>p.shift) == len(p.used) {
		p.used = append(p.used, make([]int32, 1<<p.shift))
		p.chunks = append(p.chunks, make([]strike, p.c<<p.shift))
	}
	p.n++
	return b
}

func (p *pool) release(b int32) {
	p.used[b>>p.shift][b&(1<<p.shift-1)] = p.free
	p.free = b
}

// index maps keys to slot numbers: linear probing, backward-shift
// deletion. An entry holds the upper 32 bits of the key's hash (which give
// its home position) and the slot number plus one; 0 is an empty entry.
// The hash is seeded at random, so that addresses picked by an attacker
// cannot be made to collide.
type index struct {
	e      []uint64
	bits   uint // len(e) is 1<<bits
	n      int
	s0, s1 uint64
}

func newIndex(max int) index {
	x := index{s0: rand.Uint64() | 1, s1: rand.Uint64()}
	size := minIndex
	if max <= presize {
		for size*3/4 < max {
			size *= 2
		}
	}
	x.resize(size)
	return x
}

func (x *index) hash(k addrKey) uint64 {
	hi, lo := bits.Mul64(k.hi^x.s0, k.lo^x.s1)
	hi, lo = bits.Mul64(hi^lo, 0x9e3779b97f4a7c15^x.s0)
	return hi ^ lo
}

// home is where an entry with hash h (or the entry e) starts probing.
func (x *index) home(h uint64) uint64 { return h >> (64 - x.bits) }

func (x *index) resize(size int) {
	old := x.e
	x.e = make([]uint64, size)
	x.bits = uint(bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, e := range old {
		if e != 0 {
			p := x.home(e)
			for x.e[p] != 0 {
				p = (p + 1) & mask
			}
			x.e[p] = e
		}
	}
}

// insert adds slot i under hash h; the key must not be in the index.
func (x *index) insert(h uint64, i int32) {
	if (x.n+1)*4 > len(x.e)*3 {
		x.resize(2 * len(x.e))
	}
	mask := uint64(len(x.e) - 1)
	p := x.home(h)
	for x.e[p] != 0 {
		p = (p + 1) & mask
	}
	x.e[p] = h&^(1<<32-1) | uint64(i+1)
	x.n++
}

// remove deletes the entry of slot i, whose key has hash h.
func (x *index) remove(h uint64, i int32) {
	mask := uint64(len(x.e) - 1)
	p := x.home(h)
	for uint32(x.e[p]) != uint32(i+1) {
		p = (p + 1) & mask
	}
	// Shift back the entries after the hole that may live in it.
	for q := (p + 1) & mask; x.e[q] != 0; q = (q + 1) & mask {
		if (q-x.home(x.e[q]))&mask >= (q-p)&mask {
			x.e[p] = x.e[q]
			p = q
		}
	}
	x.e[p] = 0
	x.n--
}

// locate returns the slot of key k, whose hash is h, or -1.
func (j *Jail) locate(k addrKey, h uint64) int32 {
	x := &j.index
	mask := uint64(len(x.e) - 1)
	for p := x.home(h); ; p = (p + 1) & mask {
		e := x.e[p]
		if e == 0 {
			return -1
		}
		if e>>32 == h>>32 {
			if i := int32(uint32(e)) - 1; j.slots.at(i).key == k {
				return i
			}
		}
	}
}

// lookup returns the slot of key k, making one (and evicting the stalest
// when the jail is full) if needed, and moves it to the fresh end of the
// list. A new slot has no strikes: fresh is true.
func (j *Jail) lookup(k addrKey) (i int32, fresh bool) {
	h := j.index.hash(k)
	if i = j.locate(k, h); i >= 0 {
		if i != j.tail {
			j.unlink(i)
			j.pushBack(i)
		}
		return i, false
	}
	if j.index.n >= j.max && j.head >= 0 {
		j.dropSlot(j.head)
	}
	i = j.slots.alloc()
	*j.slots.at(i) = track{key: k, blk: -1}
	j.index.insert(h, i)
	j.pushBack(i)
	return i, true
}

// pool returns pool k, making it (and those before) if need be.
func (j *Jail) pool(k uint8) *pool {
	for len(j.pools) <= int(k) {
		j.pools = append(j.pools, newPool(j.c0<<len(j.pools)))
	}
	return j.pools[k]
}

// update drops the strikes of slot i not later than cut, adds s, and
// returns the weight of them all. A fresh slot has no strikes yet.
func (j *Jail) update(i int32, fresh bool, cut int64, s strike) (sum int) {
	tr := j.slots.at(i)
	if fresh {
		tr.t, tr.w, tr.kind = s.t, s.w, s.kind
		return int(s.w)
	}
	var bs []strike
	var used *int32
	if tr.blk >= 0 {
		bs, used = j.pools[tr.pool].block(tr.blk)
	}
	// Order does not matter: the last strike fills a dropped one's place.
	kept := len(bs)
	for k := 0; k < kept; {
		if bs[k].t > cut {
			sum += int(bs[k].w)
			k++
			continue
		}
		kept--
		bs[k] = bs[kept]
	}
	bs = bs[:kept]
	switch {
	case tr.t > cut:
		sum += int(tr.w)
	case kept > 0:
		// The inline strike is out: one from the block takes its place.
		kept--
		tr.t, tr.w, tr.kind = bs[kept].t, bs[kept].w, bs[kept].kind
		bs = bs[:kept]
	default:
		// All are out: s is the only one.
		tr.t, tr.w, tr.kind = s.t, s.w, s.kind
		if tr.blk >= 0 {
			j.pools[tr.pool].release(tr.blk)
			tr.blk = -1
		}
		return int(s.w)
	}
	sum += int(s.w)
	switch {
	case tr.blk < 0:
		tr.pool, tr.blk = 0, j.pool(0).alloc()
		bs, used = j.pools[0].block(tr.blk)
	case kept == cap(bs):
		// Full: move to a block of the next pool.
		old := j.pools[tr.pool]
		p := j.pool(tr.pool + 1)
		b := p.alloc()
		nbs, nused := p.block(b)
		bs = append(nbs, bs...)
		used = nused
		old.release(tr.blk)
		tr.pool, tr.blk = tr.pool+1, b
	}
	bs = append(bs, s) // in place: the block has room
	*used = int32(len(bs))
	return sum
}

// load returns slot i's strikes, in j.buf.
func (j *Jail) load(i int32) []strike {
	tr := j.slots.at(i)
	buf := append(j.buf[:0], strike{t: tr.t, w: tr.w, kind: tr.kind})
	if tr.blk >= 0 {
		bs, _ := j.pools[tr.pool].block(tr.blk)
		buf = append(buf, bs...)
	}
	j.buf = buf
	return buf
}

// last returns the time of slot i's newest strike.
func (j *Jail) last(i int32) int64 {
	tr := j.slots.at(i)
	t := tr.t
	if tr.blk >= 0 {
		bs, _ := j.pools[tr.pool].block(tr.blk)
		for _, s := range bs {
			t = max(t, s.t)
		}
	}
	return t
}

// drop forgets the strikes counted under key a.
func (j *Jail) drop(a netip.Addr) {
	if a.Is4In6() {
		return // tracked under its IPv4 address, not this one (as Observe unmaps)
	}
	k := keyOf(a)
	if i := j.locate(k, j.index.hash(k)); i >= 0 {
		j.dropSlot(i)
	}
}

// dropSlot forgets slot i's address and strikes.
func (j *Jail) dropSlot(i int32) {
	tr := j.slots.at(i)
	j.unlink(i)
	j.index.remove(j.index.hash(tr.key), i)
	if tr.blk >= 0 {
		j.pools[tr.pool].release(tr.blk)
		tr.blk = -1
	}
	j.slots.release(i)
}

func (j *Jail) unlink(i int32) {
	tr := j.slots.at(i)
	if tr.prev >= 0 {
		j.slots.at(tr.prev).next = tr.next
	} else {
		j.head = tr.next
	}
	if tr.next >= 0 {
		j.slots.at(tr.next).prev = tr.prev
	} else {
		j.tail = tr.prev
	}
	tr.prev, tr.next = -1, -1
}

func (j *Jail) pushBack(i int32) {
	tr := j.slots.at(i)
	tr.prev, tr.next = j.tail, -1
	if j.tail >= 0 {
		j.slots.at(j.tail).next = i
	} else {
		j.head = i
	}
	j.tail = i
}
