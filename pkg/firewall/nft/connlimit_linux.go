//go:build linux

package nft

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// connSetSize caps the number of sources a meter or flood set tracks. When
// a set is full, new sources pass unmetered (the kernel cannot add them)
// until idle ones expire; it bounds the kernel memory a flood of spoofed
// sources can take.
const connSetSize = 65535

// maxMeterTimeout caps how long a meter remembers an idle source.
const maxMeterTimeout = 7 * 24 * time.Hour

// allSets returns all the jail's sets: the four ban sets and the
// connection-limit sets it has.
func (j *jailState) allSets() []*nftables.Set {
	out := append([]*nftables.Set(nil), j.sets[:]...)
	for _, s := range j.conn {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// newConnSets describes the connection-limit sets of a jail: none without
// a ConnLimit, the meters with one, and the flood sets too if it bans.
// Their elements are created and refreshed by the rules; timeouts are set
// per element by the rules, so the sets' definitions never change.
func (b *Backend) newConnSets(j firewall.Jail) [numConnKinds]*nftables.Set {
	var out [numConnKinds]*nftables.Set
	if j.ConnLimit == nil {
		return out
	}
	for k := connKind(0); k < numConnKinds; k++ {
		if k.isFlood() && !j.ConnLimit.Ban {
			continue
		}
		keyType := nftables.TypeIPAddr
		if k.isV6() {
			keyType = nftables.TypeIP6Addr
		}
		out[k] = &nftables.Set{
			Table:        b.table,
			Name:         connSetName(j.Name, k),
			KeyType:      keyType,
			KeyByteOrder: binaryutil.BigEndian,
			HasTimeout:   true,
			Dynamic:      true,
			Size:         connSetSize,
		}
	}
	return out
}

// connSetMatches checks the type and flags of a connection-limit set found
// in the kernel.
func connSetMatches(s *nftables.Set, k connKind) bool {
	want := nftables.TypeIPAddr.Bytes
	if k.isV6() {
		want = nftables.TypeIP6Addr.Bytes
	}
	return s.KeyType.Bytes == want && s.HasTimeout && s.Dynamic && !s.Interval && !s.IsMap && !s.Constant
}

// queueConnSets queues what the jail's connection-limit sets need: creating
// the missing ones, replacing one of the wrong type, and, with resetMeters,
// emptying the meters. It records their names in keep. The chain must have
// been flushed earlier in the transaction.
func (b *Backend) queueConnSets(c *nftables.Conn, st *jailState, existing map[string]*nftables.Set, resetMeters bool, keep map[string]bool) error {
	for k, s := range st.conn {
		if s == nil {
			continue
		}
		keep[s.Name] = true
		old, ok := existing[s.Name]
		if ok && connSetMatches(old, connKind(k)) {
			if resetMeters && !connKind(k).isFlood() {
				c.FlushSet(s)
			}
			continue
		}
		if ok {
			b.log.Warn("set of the wrong type, replacing it", "set", s.Name)
			c.DelSet(old)
		}
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("add set %s: %w", s.Name, err)
		}
	}
	return nil
}

// sameLimit reports whether two connection limits meter alike (rate, unit
// and burst; whether and how long they ban does not matter to the meters).
func sameLimit(a, b *firewall.ConnLimit) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Rate == b.Rate && a.Per == b.Per && a.EffectiveBurst() == b.EffectiveBurst()
}

// meterTimeout is how long a meter keeps a source after its last new
// connection: at least a minute and the limit's unit, and long enough for
// its bucket to refill completely (Burst/Rate units), so that a source
// forgotten and seen again gets no more than it would have had anyway.
func meterTimeout(l *firewall.ConnLimit) time.Duration {
	refill := math.Ceil(float64(l.EffectiveBurst()) * l.Per.Seconds() / float64(l.Rate))
	t := time.Duration(min(refill, maxMeterTimeout.Seconds())) * time.Second
	return min(max(t, time.Minute, l.Per), maxMeterTimeout)
}

// limitUnit converts a validated ConnLimit.Per.
func limitUnit(per time.Duration) expr.LimitTime {
	switch per {
	case time.Second:
		return expr.LimitTimeSecond
	case time.Minute:
		return expr.LimitTimeMinute
	case time.Hour:
		return expr.LimitTimeHour
	}
	return expr.LimitTimeDay
}

// floodOf returns the flood set kind of a meter's family.
func floodOf(k connKind) connKind {
	if k.isV6() {
		return connFlood6
	}
	return connFlood4
}

// meterExprs builds the rule of a meter set, for IPv4
//
//	meta nfproto ipv4 meta l4proto tcp [th dport {ports}] ct state new
//	update @<jail>_meter4 { ip saddr timeout <t> limit rate over <rate>/<unit> burst <burst> packets }
//	[update @<jail>_flood4 { ip saddr timeout <ban timeout> }] counter drop
//
// The dynset looks the source up in the meter, adding it with a full bucket
// if absent, and refreshes its timeout; the limit breaks off the rule while
// the source is within its rate, so only connections over it reach the
// flood set update and the drop.
func (b *Backend) meterExprs(c *nftables.Conn, st *jailState, k connKind) ([]expr.Any, error) {
	v6, l := k.isV6(), st.jail.ConnLimit
	meter := st.conn[k]
	exprs := matchFamily(v6)
	if len(st.jail.Ports) > 0 {
		portExprs, err := b.portMatch(c, st.jail.Ports)
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, portExprs...)
	} else {
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		)
	}
	exprs = append(exprs,
		// ct state new: the state bits are in host byte order.
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1,
			DestRegister:   1,
			Len:            4,
			Mask:           binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW),
			Xor:            make([]byte, 4),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		loadSaddr(v6),
		&expr.Dynset{
			SrcRegKey: 1,
			SetName:   meter.Name,
			SetID:     meter.ID,
			Operation: unix.NFT_DYNSET_OP_UPDATE,
			Timeout:   meterTimeout(l),
			Exprs: []expr.Any{&expr.Limit{
				Type:  expr.LimitTypePkts,
				Over:  true,
				Rate:  l.Rate,
				Unit:  limitUnit(l.Per),
				Burst: l.EffectiveBurst(),
			}},
		},
	)
	if flood := st.conn[floodOf(k)]; flood != nil {
		exprs = append(exprs,
			loadSaddr(v6),
			&expr.Dynset{
				SrcRegKey: 1,
				SetName:   flood.Name,
				SetID:     flood.ID,
				Operation: unix.NFT_DYNSET_OP_UPDATE,
				Timeout:   l.BanTimeout,
			},
		)
	}
	return append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}), nil
}

// Floods returns the sources the kernel banned for going over a jail's
// connection limit (ConnLimit.Ban): the elements of the flood sets, each
// with the time it has left as Timeout. Flood sets are small (one element
// per flooding source, at most connSetSize), so they are read back whole. A
// flood set missing from the kernel is skipped; Check reports it.
func (b *Backend) Floods(ctx context.Context) (_ []firewall.Entry, err error) {
	defer func() { err = explain(err) }()
	if err := b.ready(ctx); err != nil {
		return nil, fmt.Errorf("nft: floods: %w", err)
	}
	existing, err := b.listSets()
	if err != nil {
		return nil, fmt.Errorf("nft: floods: %w", err)
	}
	var out []firewall.Entry
	for _, j := range b.jails {
		st := b.state[j.Name]
		for _, k := range []connKind{connFlood4, connFlood6} {
			set := st.conn[k]
			if set == nil {
				continue
			}
			if _, ok := existing[set.Name]; !ok {
				continue
			}
			c, err := b.connection()
			if err != nil {
				return nil, fmt.Errorf("nft: floods: %w", err)
			}
			elems, err := c.GetSetElements(set)
			if err != nil {
				b.resetConn()
				return nil, fmt.Errorf("nft: floods: list set %s: %w", set.Name, err)
			}
			out = appendFloods(out, j.Name, elems, time.Now())
		}
	}
	return out, nil
}

// appendFloods appends the entries for a flood set's elements. Elements
// with a timeout but no time left are expiring and left out; the others end
// their time left after now, the moment they were listed.
func appendFloods(out []firewall.Entry, jail string, elems []nftables.SetElement, now time.Time) []firewall.Entry {
	for _, e := range elems {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok || e.IntervalEnd {
			continue
		}
		if e.Timeout != 0 && e.Expires <= 0 {
			continue
		}
		var end time.Time
		if e.Timeout != 0 {
			end = now.Add(e.Expires)
		}
		out = append(out, firewall.Entry{Jail: jail, Prefix: netip.PrefixFrom(a, a.BitLen()), Expires: end})
	}
	return out
}
