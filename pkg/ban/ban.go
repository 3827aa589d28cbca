// Package ban defines what banwatch records and enforces: a ban of one
// address or prefix in one jail for a time, with the evidence that caused it.
//
// A Ban is made by a jail (or by an admin through banctl), written to the
// store first and then installed in the firewall, so that the store is
// always the source of truth the kernel is rebuilt from.
package ban

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// How a ban ended, as recorded in the store.
const (
	EndActive   = ""         // not ended
	EndExpired  = "expired"  // its time ran out
	EndUnbanned = "unbanned" // removed by an admin; Ban.EndedBy says who
	EndReplaced = "replaced" // superseded by a newer ban of the same prefix in the same jail
)

// Origin says who made a ban.
const (
	OriginJail   = "jail"   // strikes in a jail reached max_strikes
	OriginManual = "manual" // banctl ban
	// OriginConnLimit: the kernel banned a source that opened connections
	// over the jail's conn_limit (conn_limit_ban).
	OriginConnLimit = "conn_limit"
)

// Ban is one ban of Prefix in Jail from Start until End.
//
// A single address is a /32 or /128 prefix (netip.PrefixFrom(addr,
// addr.BitLen())); wider prefixes are subnet bans.
type Ban struct {
	ID      int64        // the store's row id; 0 until stored
	Prefix  netip.Prefix // masked: Prefix == Prefix.Masked()
	Jail    string
	Origin  string    // OriginJail or OriginManual
	Start   time.Time // when the ban began (the time of the deciding event)
	End     time.Time // when it ends unless lifted earlier
	Strikes int       // weighted strikes within the window when it was decided
	// Reason names the events that caused the ban, most frequent first,
	// joined by ","; for a manual ban, the admin's text.
	Reason     string
	FirstEvent time.Time // time of the oldest strike that counted
	LastEvent  time.Time // time of the deciding strike
	// Evidence holds the log lines of the strikes that counted, oldest
	// first, at most a jail's evidence limit.
	Evidence []string

	// Node is the cluster node that made the ban; "" for this one.
	Node string

	Ended   string    // EndActive, EndExpired, EndUnbanned or EndReplaced
	EndedAt time.Time // zero while active
	EndedBy string    // for EndUnbanned: "uid 0", "banctl", ...

	// Installed is set by the daemon once the ban is in the kernel (not
	// stored), so that a batch retried after a store error is not
	// installed twice.
	Installed bool
}

// Single reports whether b bans one address rather than a subnet.
func (b *Ban) Single() bool { return b.Prefix.Bits() == b.Prefix.Addr().BitLen() }

// Remaining is the ban time left at now, or 0 when it has run out.
func (b *Ban) Remaining(now time.Time) time.Duration {
	if d := b.End.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Strike is one event counted against an address in a jail: kept by the
// store only while it can still count (within find_time), so that a restart
// rebuilds the jails' windows exactly.
type Strike struct {
	Jail   string
	Addr   netip.Addr
	Time   time.Time
	Kind   event.Kind
	Weight int
	Line   string // the log line, for evidence
	// Node is the cluster node that counted it (share_strikes); "" for
	// this one.
	Node string
}

// IP writes p as an admin reads it: the address of a single-address
// prefix ("203.0.113.7"), the CIDR of a subnet ("198.51.100.0/24").
func IP(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// PrefixOf returns the single-address prefix of a.
func PrefixOf(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// ParsePrefix reads what an admin writes for a ban or an ignore entry: an
// address ("192.0.2.7", "2001:db8::1") as its single-address prefix, or a
// CIDR prefix ("192.0.2.0/24"), which must have no host bits set.
// IPv4-mapped IPv6 is read as IPv4; zones are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return PrefixOf(a), nil
}
