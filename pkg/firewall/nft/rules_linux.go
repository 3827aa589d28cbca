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

// queueRules queues a flush of the chain and the rules for the jails, four
// per jail, one per set.
func (b *Backend) queueRules(c *nftables.Conn, jails []firewall.Jail, states map[string]*jailState) error {
	c.FlushChain(b.chain)
	for _, j := range jails {
		st := states[j.Name]
		for k := setKind(0); k < numKinds; k++ {
			exprs, err := b.ruleExprs(c, st.sets[k], k, j.Ports)
			if err != nil {
				return fmt.Errorf("rule for %s: %w", st.sets[k].Name, err)
			}
			c.AddRule(&nftables.Rule{
				Table:    b.table,
				Chain:    b.chain,
				Exprs:    exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, "banwatch jail "+j.Name),
			})
		}
	}
	return nil
}

// ruleExprs builds, for a set of kind k,
//
//	meta nfproto ipv4 [meta l4proto tcp th dport {ports}] ip saddr @set counter drop
//
// (ip6 saddr for IPv6 sets). Several ports use an anonymous set, queued on c
// ahead of the rule.
func (b *Backend) ruleExprs(c *nftables.Conn, set *nftables.Set, k setKind, ports []uint16) ([]expr.Any, error) {
	proto, off, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	if k.isV6() {
		proto, off, size = byte(unix.NFPROTO_IPV6), 8, 16
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	if len(ports) > 0 {
		portExprs, err := b.portMatch(c, ports)
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, portExprs...)
	}
	return append(exprs,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
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
// rules and they look up exactly the expected sets.
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
	if want := int(numKinds) * len(b.jails); len(rules) != want {
		return false, fmt.Sprintf("chain has %d rules, want %d", len(rules), want), nil
	}
	want := map[string]bool{}
	for _, st := range b.state {
		for _, s := range st.sets {
			want[s.Name] = true
		}
	}
	got := map[string]bool{}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok && !strings.HasPrefix(l.SetName, "__") {
				got[l.SetName] = true
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
