//go:build linux

package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

// addrExp is a single address with its expiry.
type addrExp struct {
	addr netip.Addr
	exp  int64
}

// entrySet is one jail's entries sorted by kind: single addresses (sorted,
// without duplicates) and prefixes, each per address family ([0] IPv4, [1]
// IPv6), with expiries.
type entrySet struct {
	addrs [2][]addrExp
	nets  [2]map[netip.Prefix]int64
}

// family is the index into entrySet's arrays.
func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

// addrKinds are the address set kinds by family.
var addrKinds = [2]setKind{kindV4, kindV6}

// netKinds are the prefix set kinds by family.
var netKinds = [2]setKind{kindNet4, kindNet6}

// floodKinds are the flood set kinds by family.
var floodKinds = [2]connKind{connFlood4, connFlood6}

// errUnknownJail is returned for entries of jails not given to Setup.
var errUnknownJail = errors.New("unknown jail")

// collectOpts tunes collect.
type collectOpts struct {
	merge         func(old, new int64) int64 // expiry when a prefix appears twice
	skipUnknown   bool                       // skip entries of unknown jails instead of failing
	ignoreTimeout bool                       // Remove: timeouts do not matter
}

// collect sorts entries by jail and kind. Entries whose Expires has passed
// at now are skipped, as are, with skipUnknown, entries of jails
// not given to Setup (else they are an error). It returns the number of
// entries skipped.
func (b *Backend) collect(entries []firewall.Entry, now time.Time, o collectOpts) (map[string]*entrySet, int, error) {
	out := map[string]*entrySet{}
	skipped := 0
	for _, e := range entries {
		if _, ok := b.state[e.Jail]; !ok {
			if o.skipUnknown {
				skipped++
				continue
			}
			return nil, 0, fmt.Errorf("%w %q", errUnknownJail, e.Jail)
		}
		p, ok := normPrefix(e.Prefix)
		if !ok {
			return nil, 0, fmt.Errorf("jail %q: invalid prefix %v", e.Jail, e.Prefix)
		}
		exp, ok := never, true
		if !o.ignoreTimeout {
			exp, ok = expiryOf(now, e.Expires)
		}
		if !ok {
			skipped++
			continue
		}
		out[e.Jail] = addEntry(out[e.Jail], p, exp, o.merge)
	}
	for _, es := range out {
		for f := range 2 {
			es.addrs[f] = dedupe(es.addrs[f], o.merge)
		}
	}
	return out, skipped, nil
}

// addEntry records one normalized entry in es, creating es if nil.
func addEntry(es *entrySet, p netip.Prefix, exp int64, merge func(old, new int64) int64) *entrySet {
	if es == nil {
		es = &entrySet{nets: [2]map[netip.Prefix]int64{{}, {}}}
	}
	f := family(p)
	if p.IsSingleIP() {
		es.addrs[f] = append(es.addrs[f], addrExp{p.Addr(), exp})
		return es
	}
	if old, ok := es.nets[f][p]; ok {
		exp = merge(old, exp)
	}
	es.nets[f][p] = exp
	return es
}

// dedupe sorts addresses and merges the expiries of duplicates, in the
// order given.
func dedupe(as []addrExp, merge func(old, new int64) int64) []addrExp {
	slices.SortStableFunc(as, func(a, b addrExp) int { return a.addr.Compare(b.addr) })
	out := as[:0]
	for _, a := range as {
		if n := len(out); n > 0 && out[n-1].addr == a.addr {
			out[n-1].exp = merge(out[n-1].exp, a.exp)
			continue
		}
		out = append(out, a)
	}
	return out
}

// lastWins is the merge for Add: a later entry updates an earlier one.
func lastWins(_, new int64) int64 { return new }

// latest is the merge for Reconcile: the longer ban wins.
func latest(old, new int64) int64 {
	if later(old, new) {
		return old
	}
	return new
}
