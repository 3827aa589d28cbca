package nft

import (
	"net/netip"
	"slices"
	"time"
)

// Expiries are Unix nanoseconds; never (0) is an entry without timeout.
const never int64 = 0

// expiryGrace is how long past its expiry an installed element is still
// assumed to be in the kernel (clocks differ by a few milliseconds); such
// elements are deleted in a way that tolerates their absence.
const expiryGrace = time.Second

// later reports whether expiry a is after expiry b.
func later(a, b int64) bool {
	if a == never {
		return b != never
	}
	return b != never && a > b
}

// expired reports whether exp has passed at now.
func expired(exp, now int64) bool { return exp != never && exp <= now }

// expiryOf turns an entry's end into an expiry (the zero time: never); ok
// is false for an end that has passed at now.
func expiryOf(now, expires time.Time) (exp int64, ok bool) {
	switch {
	case expires.IsZero():
		return never, true
	case !expires.After(now):
		return 0, false
	}
	return expires.UnixNano(), true
}

// timeoutAt is the kernel element timeout for an expiry, rounded up to whole
// milliseconds (the kernel's unit); 0 means no timeout.
func timeoutAt(exp, now int64) time.Duration {
	if exp == never {
		return 0
	}
	ms := (exp - now + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return time.Duration(max(ms, 1)) * time.Millisecond
}

// normPrefix canonicalizes a ban's prefix: IPv4-mapped IPv6 becomes IPv4,
// zones are dropped and host bits cleared.
func normPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	addr, bits := p.Addr().WithZone(""), p.Bits()
	if addr.Is4In6() && bits >= 96 {
		addr, bits = addr.Unmap(), bits-96
	}
	return netip.PrefixFrom(addr, bits).Masked(), true
}

// kindOf is the set kind a normalized prefix belongs in.
func kindOf(p netip.Prefix) setKind {
	switch {
	case p.Addr().Is4() && p.IsSingleIP():
		return kindV4
	case p.Addr().Is4():
		return kindNet4
	case p.IsSingleIP():
		return kindV6
	}
	return kindNet6
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// halves splits p into its two halves; p must not be a single address.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	lo = netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi = netip.PrefixFrom(lastAddr(lo).Next(), p.Bits()+1)
	return lo, hi
}

// contains reports whether prefix a contains prefix b.
func contains(a, b netip.Prefix) bool {
	return a.Bits() <= b.Bits() && a.Contains(b.Addr())
}

// pnode is a prefix in the containment forest built by cover.
type pnode struct {
	p    netip.Prefix
	exp  int64
	kids []*pnode
}

// cover returns non-overlapping prefixes that together cover exactly the
// prefixes of want, each with the latest expiry among the wanted prefixes
// that contain it. An interval set cannot hold overlapping elements, so this
// is what the kernel gets. Since prefixes either nest or are disjoint, a
// nested prefix that outlives its parent is cut out of the parent, and one
// that does not is dropped (the parent covers it for longer).
func cover(want map[netip.Prefix]int64) map[netip.Prefix]int64 {
	out := make(map[netip.Prefix]int64, len(want))
	for _, root := range forest(want) {
		root.visit(0, true, out)
	}
	return out
}

// forest arranges the wanted prefixes by containment.
func forest(want map[netip.Prefix]int64) []*pnode {
	ps := make([]netip.Prefix, 0, len(want))
	for p := range want {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var roots, stack []*pnode
	for _, p := range ps {
		n := &pnode{p: p, exp: want[p]}
		for len(stack) > 0 && !contains(stack[len(stack)-1].p, p) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			roots = append(roots, n)
		} else {
			top := stack[len(stack)-1]
			top.kids = append(top.kids, n)
		}
		stack = append(stack, n)
	}
	return roots
}

// visit emits n's share of the cover. owner is the expiry of the nearest
// ancestor that emits (ignored for roots). It returns the prefixes in n's
// subtree that emit with an expiry other than owner: the holes the owner
// has to leave for them.
func (n *pnode) visit(owner int64, root bool, out map[netip.Prefix]int64) []netip.Prefix {
	if root || later(n.exp, owner) {
		var holes []netip.Prefix
		for _, k := range n.kids {
			holes = append(holes, k.visit(n.exp, false, out)...)
		}
		carve(n.p, holes, n.exp, out)
		return []netip.Prefix{n.p}
	}
	var holes []netip.Prefix
	for _, k := range n.kids {
		holes = append(holes, k.visit(owner, false, out)...)
	}
	return holes
}

// carve emits p minus the disjoint holes inside it as CIDR blocks.
func carve(p netip.Prefix, holes []netip.Prefix, exp int64, out map[netip.Prefix]int64) {
	if len(holes) == 0 {
		out[p] = exp
		return
	}
	if slices.Contains(holes, p) {
		return
	}
	lo, hi := halves(p)
	carve(lo, inside(holes, lo), exp, out)
	carve(hi, inside(holes, hi), exp, out)
}

// inside filters the holes that lie within p.
func inside(holes []netip.Prefix, p netip.Prefix) []netip.Prefix {
	var in []netip.Prefix
	for _, h := range holes {
		if contains(p, h) {
			in = append(in, h)
		}
	}
	return in
}

// netState is the backend's record of one prefix set: the prefixes the
// daemon asked for and the non-overlapping elements loaded into the kernel.
type netState struct {
	want map[netip.Prefix]int64
	have map[netip.Prefix]int64
}

func newNetState() *netState {
	return &netState{want: map[netip.Prefix]int64{}, have: map[netip.Prefix]int64{}}
}

// netDiff is what turns the kernel's elements into the wanted cover.
type netDiff struct {
	del     []netip.Prefix         // installed, no longer wanted
	add     map[netip.Prefix]int64 // not installed
	refresh map[netip.Prefix]int64 // installed with another expiry
	next    map[netip.Prefix]int64 // the cover after the change
}

// plan prunes expired prefixes and computes the diff from what is installed
// to the cover of what is wanted.
func (s *netState) plan(now int64) netDiff {
	for p, exp := range s.want {
		if expired(exp, now) {
			delete(s.want, p)
		}
	}
	d := netDiff{add: map[netip.Prefix]int64{}, refresh: map[netip.Prefix]int64{}, next: cover(s.want)}
	for p, exp := range s.have {
		if expired(exp, now-int64(expiryGrace)) {
			continue
		}
		if _, ok := d.next[p]; !ok {
			d.del = append(d.del, p)
		}
	}
	slices.SortFunc(d.del, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for p, exp := range d.next {
		old, ok := s.have[p]
		switch {
		case !ok || expired(old, now-int64(expiryGrace)):
			d.add[p] = exp
		case old != exp:
			d.refresh[p] = exp
		}
	}
	return d
}

// empty reports whether the diff changes nothing.
func (d netDiff) empty() bool {
	return len(d.del) == 0 && len(d.add) == 0 && len(d.refresh) == 0
}
