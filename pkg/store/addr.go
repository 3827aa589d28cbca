package store

import (
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Address keys: a family byte then the address bytes. IPv4 is 5 bytes,
// IPv6 17; an IPv4-mapped IPv6 address stays IPv6, as netip keeps it.
const (
	fam4 = 4
	fam6 = 6
)

// addrKey returns the key blob of a (its zone, if any, is dropped).
func addrKey(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return []byte{fam4, b[0], b[1], b[2], b[3]}
	}
	b := a.As16()
	k := make([]byte, 17)
	k[0] = fam6
	copy(k[1:], b[:])
	return k
}

// keyAddr decodes a key blob written by addrKey.
func keyAddr(k []byte) (netip.Addr, error) {
	switch {
	case len(k) == 5 && k[0] == fam4:
		return netip.AddrFrom4([4]byte(k[1:])), nil
	case len(k) == 17 && k[0] == fam6:
		return netip.AddrFrom16([16]byte(k[1:])), nil
	}
	return netip.Addr{}, fmt.Errorf("bad address key %x", k)
}

// keyPrefix decodes a key blob and its bits into a prefix.
func keyPrefix(k []byte, bits int64) (netip.Prefix, error) {
	a, err := keyAddr(k)
	if err != nil {
		return netip.Prefix{}, err
	}
	if bits < 0 || bits > int64(a.BitLen()) {
		return netip.Prefix{}, fmt.Errorf("bad prefix length %d for %v", bits, a)
	}
	return netip.PrefixFrom(a, int(bits)), nil
}

// rangeKeys returns the first and last key of the addresses inside p
// (which must be masked).
func rangeKeys(p netip.Prefix) (lo, hi []byte) {
	lo = addrKey(p.Addr())
	hi = append([]byte(nil), lo...)
	bits := p.Bits()
	for i := 1; i < len(hi); i++ {
		// bit positions (i-1)*8 .. i*8-1 of the address
		first := (i - 1) * 8
		switch {
		case first >= bits:
			hi[i] = 0xff
		case first+8 > bits:
			hi[i] |= 0xff >> (bits - first)
		}
	}
	return lo, hi
}

// cover is a prefix key that, with any length in [minBits, maxBits],
// names a prefix covering the queried one.
type cover struct {
	key              []byte
	minBits, maxBits int
}

// covers returns the keys of the prefixes strictly wider than p (masked)
// that cover it, except those whose key equals p's own (these fall inside
// p's key range already): one entry per distinct masked address, with the
// range of lengths that mask to it.
func covers(p netip.Prefix) []cover {
	own := string(addrKey(p.Addr()))
	var out []cover
	for b := 0; b < p.Bits(); b++ {
		k := addrKey(netip.PrefixFrom(p.Addr(), b).Masked().Addr())
		if string(k) == own {
			continue
		}
		if n := len(out); n > 0 && string(out[n-1].key) == string(k) {
			out[n-1].maxBits = b
			continue
		}
		out = append(out, cover{key: k, minBits: b, maxBits: b})
	}
	return out
}

// toNS returns t as Unix nanoseconds, 0 for the zero time. Times outside
// the int64 nanosecond range (before 1678 or after 2262) saturate, so that
// a ban "forever" (a far End) is stored as the latest representable time.
func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	const maxSec = math.MaxInt64 / int64(time.Second)
	switch s := t.Unix(); {
	case s >= maxSec:
		return math.MaxInt64
	case s <= -maxSec:
		return math.MinInt64 + 1
	}
	return t.UnixNano()
}

// fromNS is the inverse of toNS, in UTC.
func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
