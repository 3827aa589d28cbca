package dnsbl

import (
	"fmt"
	"net/netip"
	"strings"
)

// List is one block list: a DNS zone and the answers that mean "listed".
//
// With no Codes, any answer in 127.0.0.0/8 except 127.255.255.0/24 counts
// as listed. With Codes, only answers within one of the ranges count.
// Answers in 127.255.255.0/24 (the "query refused" codes of Spamhaus and
// others) never count, whatever the Codes say.
type List struct {
	Zone  string      // DNS zone, e.g. "zen.spamhaus.org", without a trailing dot
	Codes []CodeRange // answers that mean "listed"; none: any 127.0.0.0/8 answer
}

// CodeRange is an inclusive range of IPv4 answers, both ends in 127.0.0.0/8.
type CodeRange struct{ Lo, Hi netip.Addr }

// Contains reports whether a lies within the range.
func (c CodeRange) Contains(a netip.Addr) bool {
	return a.Is4() && c.Lo.Compare(a) <= 0 && a.Compare(c.Hi) <= 0
}

// String formats the range as "127.0.0.2-127.0.0.7", or "127.0.0.2" when
// Lo and Hi are the same.
func (c CodeRange) String() string {
	if c.Lo == c.Hi {
		return c.Lo.String()
	}
	return c.Lo.String() + "-" + c.Hi.String()
}

// String formats the list the way ParseList reads it.
func (l List) String() string {
	if len(l.Codes) == 0 {
		return l.Zone
	}
	codes := make([]string, len(l.Codes))
	for i, c := range l.Codes {
		codes[i] = c.String()
	}
	return l.Zone + "=" + strings.Join(codes, ",")
}

// listed reports whether the answer code means "listed" for l. Refused codes
// (127.255.255.0/24) and codes outside 127.0.0.0/8 never do.
func (l List) listed(code netip.Addr) bool {
	if !in127(code) || refusedCode(code) {
		return false
	}
	if len(l.Codes) == 0 {
		return true
	}
	for _, c := range l.Codes {
		if c.Contains(code) {
			return true
		}
	}
	return false
}

var (
	loopback8    = netip.MustParsePrefix("127.0.0.0/8")
	refused24    = netip.MustParsePrefix("127.255.255.0/24")
	maxZoneChars = 253 - 64 // room for the 32 reversed nibbles of an IPv6 address
)

func in127(a netip.Addr) bool       { return loopback8.Contains(a) }
func refusedCode(a netip.Addr) bool { return refused24.Contains(a) }

// ParseList reads a list as written in a jail's dnsbl option:
//
//	zen.spamhaus.org
//	zen.spamhaus.org=127.0.0.2-127.0.0.7
//	zen.spamhaus.org=127.0.0.2,127.0.0.4-127.0.0.7
//
// The zone is lower-cased and a trailing dot removed. Codes are IPv4
// addresses or ranges "lo-hi" in 127.0.0.0/8, separated by commas.
// Errors say what is wrong.
func ParseList(s string) (List, error) {
	zone, codes, hasCodes := strings.Cut(s, "=")
	z, err := normalizeZone(strings.TrimSpace(zone))
	if err != nil {
		return List{}, fmt.Errorf("dnsbl: list %q: %w", s, err)
	}
	l := List{Zone: z}
	if !hasCodes {
		return l, nil
	}
	if strings.TrimSpace(codes) == "" {
		return List{}, fmt.Errorf("dnsbl: list %q: no return codes after \"=\" (want e.g. %q)", s, z+"=127.0.0.2-127.0.0.7")
	}
	for item := range strings.SplitSeq(codes, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return List{}, fmt.Errorf("dnsbl: list %q: empty return code (stray comma?)", s)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		var r CodeRange
		if r.Lo, err = parseCode(strings.TrimSpace(lo)); err != nil {
			return List{}, fmt.Errorf("dnsbl: list %q: %w", s, err)
		}
		r.Hi = r.Lo
		if isRange {
			if r.Hi, err = parseCode(strings.TrimSpace(hi)); err != nil {
				return List{}, fmt.Errorf("dnsbl: list %q: %w", s, err)
			}
		}
		if err := checkRange(r); err != nil {
			return List{}, fmt.Errorf("dnsbl: list %q: %w", s, err)
		}
		l.Codes = append(l.Codes, r)
	}
	return l, nil
}

func parseCode(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("return code range with an empty end")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("return code %q is not an IPv4 address", s)
	}
	return a, nil
}

// checkRange checks a range given by ParseList or directly in Options.
func checkRange(r CodeRange) error {
	for _, a := range []netip.Addr{r.Lo, r.Hi} {
		if !a.Is4() {
			return fmt.Errorf("return code %s is not an IPv4 address", a)
		}
		if !in127(a) {
			return fmt.Errorf("return code %s is outside 127.0.0.0/8 (DNSBL answers are in 127.0.0.0/8)", a)
		}
	}
	if r.Hi.Less(r.Lo) {
		return fmt.Errorf("return code range %s-%s is backwards", r.Lo, r.Hi)
	}
	return nil
}

// normalizeZone lower-cases z, drops a trailing dot and checks that it is a
// plausible DNS name.
func normalizeZone(z string) (string, error) {
	z = strings.ToLower(strings.TrimSuffix(z, "."))
	if z == "" {
		return "", fmt.Errorf("no zone (want e.g. \"zen.spamhaus.org\")")
	}
	if len(z) > maxZoneChars {
		return "", fmt.Errorf("zone is %d characters long, at most %d fit in a query", len(z), maxZoneChars)
	}
	for label := range strings.SplitSeq(z, ".") {
		switch {
		case label == "":
			return "", fmt.Errorf("zone %q has an empty label", z)
		case len(label) > 63:
			return "", fmt.Errorf("zone %q has a label longer than 63 characters", z)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", fmt.Errorf("zone %q has a label starting or ending with '-'", z)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("zone %q has the character %q, not allowed in a host name", z, c)
			}
		}
	}
	return z, nil
}
