//go:build linux

package nft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// queueRules queues the rules for the jails (after a flush of the chain):
// per jail, one per ban set, then for a jail with a ConnLimit one per flood
// set (if it bans) and one per meter set.
func (b *Backend) queueRules(c *nftables.Conn, jails []firewall.Jail, states map[string]*jailState) error {
	for _, j := range jails {
		st := states[j.Name]
		comment := userdata.AppendString(nil, userdata.TypeComment, "banwatch jail "+j.Name)
		add := func(exprs []expr.Any) {
			c.AddRule(&nftables.Rule{Table: b.table, Chain: b.chain, Exprs: exprs, UserData: comment})
		}
		for k := setKind(0); k < numKinds; k++ {
			exprs, err := b.ruleExprs(c, st.sets[k], k.isV6(), j.Ports)
			if err != nil {
				return fmt.Errorf("rule for %s: %w", st.sets[k].Name, err)
			}
			add(exprs)
		}
		for _, k := range []connKind{connFlood4, connFlood6} {
			if set := st.conn[k]; set != nil {
				exprs, err := b.ruleExprs(c, set, k.isV6(), j.Ports)
				if err != nil {
					return fmt.Errorf("rule for %s: %w", set.Name, err)
				}
				add(exprs)
			}
		}
		for _, k := range []connKind{connMeter4, connMeter6} {
			if st.conn[k] == nil {
				continue
			}
			exprs, err := b.meterExprs(c, st, k)
			if err != nil {
				return fmt.Errorf("rule for %s: %w", st.conn[k].Name, err)
			}
			add(exprs)
		}
	}
	return nil
}

// rulesOf is the number of rules queueRules makes for a jail.
func rulesOf(st *jailState) int {
	n := int(numKinds)
	for _, s := range st.conn {
		if s != nil {
			n++
		}
	}
	return n
}

// saddr returns the nfproto value and the source address field of an
// address family.
func saddr(v6 bool) (proto byte, off, size uint32) {
	if v6 {
		return unix.NFPROTO_IPV6, 8, 16
	}
	return unix.NFPROTO_IPV4, 12, 4
}

// matchFamily builds "meta nfproto ipv4" (or ipv6).
func matchFamily(v6 bool) []expr.Any {
	proto, _, _ := saddr(v6)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// loadSaddr loads the source address into register 1.
func loadSaddr(v6 bool) expr.Any {
	_, off, size := saddr(v6)
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size}
}

// ruleExprs builds, for a set of the family,
//
//	meta nfproto ipv4 [meta l4proto tcp th dport {ports}] ip saddr @set counter drop
//
// (ip6 saddr for IPv6 sets). Several ports use an anonymous set, queued on c
// ahead of the rule.
func (b *Backend) ruleExprs(c *nftables.Conn, set *nftables.Set, v6 bool, ports []uint16) ([]expr.Any, error) {
	exprs := matchFamily(v6)
	if len(ports) > 0 {
		portExprs, err := b.portMatch(c, ports)
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, portExprs...)
	}
	return append(exprs,
		loadSaddr(v6),
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	), nil
}

// portMatch builds "meta l4proto tcp th dport <port or {ports}>".
func (b *Backend) portMatch(c *nftables.Conn, ports []uint16) ([]expr.Any, error) {
	ports = slices.Clone(ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
	if len(ports) == 1 {
		return append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(ports[0])}), nil
	}
	set := &nftables.Set{
		Table:        b.table,
		Anonymous:    true,
		Constant:     true,
		KeyType:      nftables.TypeInetService,
		KeyByteOrder: binaryutil.BigEndian,
	}
	elems := make([]nftables.SetElement, len(ports))
	for i, p := range ports {
		elems[i] = nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)}
	}
	if err := c.AddSet(set, elems); err != nil {
		return nil, fmt.Errorf("port set: %w", err)
	}
	return append(exprs, &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID}), nil
}

// checkRules reports whether the chain holds exactly the expected number of
// rules and they look up or update exactly the expected sets.
func (b *Backend) checkRules() (bool, string, error) {
	c, err := b.connection()
	if err != nil {
		return false, "", err
	}
	rules, err := c.GetRules(b.table, b.chain)
	if err != nil {
		b.resetConn()
		return false, "", fmt.Errorf("list rules: %w", err)
	}
	want := map[string]bool{}
	nrules := 0
	for _, st := range b.state {
		for _, s := range st.allSets() {
			want[s.Name] = true
		}
		nrules += rulesOf(st)
	}
	if len(rules) != nrules {
		return false, fmt.Sprintf("chain has %d rules, want %d", len(rules), nrules), nil
	}
	got := map[string]bool{}
	for _, r := range rules {
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Lookup:
				if !strings.HasPrefix(e.SetName, "__") {
					got[e.SetName] = true
				}
			case *expr.Dynset:
				got[e.SetName] = true
			}
		}
	}
	for name := range want {
		if !got[name] {
			return false, "no rule for set " + name, nil
		}
	}
	if len(got) != len(want) {
		return false, "rules refer to unexpected sets", nil
	}
	return true, "", nil
}
