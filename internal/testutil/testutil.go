// Package testutil holds checks that tests of several packages share.
package testutil

import "net/netip"

// LiterallyHolds reports whether line writes the address a as a whole
// token: a stretch of address characters that parses to a (IPv4-mapped
// forms count as IPv4) and that no digit, dot or colon before or after
// extends. It is the check that a filter took its address from the line and
// made none up, not even a prefix of a longer one.
func LiterallyHolds(line []byte, a netip.Addr) bool {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	isHex := func(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	isAddrByte := func(c byte) bool { return isHex(c) || c == ':' || c == '.' }
	bounded := func(k, e int) bool {
		if a.Is4() {
			if k > 0 && (isDigit(line[k-1]) || line[k-1] == '.') {
				return false
			}
			return e == len(line) || !(isDigit(line[e]) || line[e] == '.' && e+1 < len(line) && isDigit(line[e+1]))
		}
		if k > 0 && (isHex(line[k-1]) || line[k-1] == ':') {
			return false
		}
		return e == len(line) || !(isHex(line[e]) || line[e] == ':' && e+1 < len(line) && isHex(line[e+1]))
	}
	for i := 0; i < len(line); {
		if !isAddrByte(line[i]) {
			i++
			continue
		}
		j := i
		for j < len(line) && isAddrByte(line[j]) {
			j++
		}
		for k := i; k < j; k++ {
			for e := k + 1; e <= j && e-k <= 45; e++ {
				if p, err := netip.ParseAddr(string(line[k:e])); err == nil && p.Unmap() == a && bounded(k, e) {
					return true
				}
			}
		}
		i = j
	}
	return false
}
