package jail

import (
	"net/netip"
	"sort"
)

// Ignore is a set of prefixes whose addresses are never banned. The zero
// value ignores nothing. It is read-only once built and safe for concurrent
// use.
type Ignore struct {
	v4, v6 []netip.Prefix // sorted by address, then by length
}

// NewIgnore returns the set of the given prefixes, plus loopback (127.0.0.0/8
// and ::1) which is always ignored.
func NewIgnore(prefixes ...netip.Prefix) *Ignore {
	ig := &Ignore{}
	all := append([]netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}, prefixes...)
	for _, p := range all {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.Addr().Is4() {
			ig.v4 = append(ig.v4, p)
		} else {
			ig.v6 = append(ig.v6, p)
		}
	}
	for _, l := range [][]netip.Prefix{ig.v4, ig.v6} {
		sort.Slice(l, func(i, j int) bool {
			if c := l[i].Addr().Compare(l[j].Addr()); c != 0 {
				return c < 0
			}
			return l[i].Bits() < l[j].Bits()
		})
	}
	return ig
}

// Contains reports whether a is ignored. An IPv4-mapped IPv6 address is
// looked up as IPv4.
func (ig *Ignore) Contains(a netip.Addr) bool {
	if ig == nil {
		return false
	}
	a = a.Unmap()
	l := ig.v6
	if a.Is4() {
		l = ig.v4
	}
	// The prefixes that can contain a start at or before it; lists are
	// short (a few entries), so a linear scan over those is enough.
	n := sort.Search(len(l), func(i int) bool { return l[i].Addr().Compare(a) > 0 })
	for i := n - 1; i >= 0; i-- {
		if l[i].Contains(a) {
			return true
		}
	}
	return false
}

// Overlaps reports whether p contains or is contained by an ignored prefix:
// a manual ban of p would ban an ignored address.
func (ig *Ignore) Overlaps(p netip.Prefix) bool {
	if ig == nil {
		return false
	}
	for _, l := range [][]netip.Prefix{ig.v4, ig.v6} {
		for _, q := range l {
			if q.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

// Prefixes returns the ignored prefixes, IPv4 first.
func (ig *Ignore) Prefixes() []netip.Prefix {
	return append(append([]netip.Prefix(nil), ig.v4...), ig.v6...)
}
