//go:build linux

package nft

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
)

func TestGroups(t *testing.T) {
	set := &nftables.Set{Name: "s"}
	for _, tc := range []struct {
		name  string
		units iter.Seq[[]nftables.SetElement]
		n     int
	}{
		{"ipv4", addrUnits(v4Addrs(10000, false), zeroClock), 10000},
		{"ipv6", addrUnits(v4Addrs(10000, true), zeroClock), 10000},
		{"intervals", netUnits(nets(5000), zeroClock), 10000},
	} {
		for _, op := range []elemOp{opAdd, opRefresh, opDel} {
			t.Run(fmt.Sprintf("%s/op%d", tc.name, op), func(t *testing.T) {
				b := &Backend{}
				total := 0
				for g := range b.groups(set, op, tc.units) {
					msgs := map[elemOp]int{opAdd: 1, opRefresh: 3, opDel: 2}[op]
					if len(g) != msgs {
						t.Fatalf("group of %d messages, want %d", len(g), msgs)
					}
					c := g[0].elems
					if n := elemsBytes(c); n > maxMsgBytes || n > maxAttrBytes {
						t.Errorf("chunk of %d bytes", n)
					}
					if c[0].IntervalEnd || !c[len(c)-1].IntervalEnd && tc.name == "intervals" {
						t.Error("chunk splits an interval")
					}
					if g[len(g)-1].del != (op == opDel) {
						t.Errorf("last message del=%v", g[len(g)-1].del)
					}
					total += len(c)
				}
				if total != tc.n {
					t.Errorf("groups hold %d elements, want %d", total, tc.n)
				}
			})
		}
	}
}

// zeroClock is a clock stopped at the epoch.
func zeroClock() int64 { return 0 }

// TestTimeoutsCountedAsBuilt checks that each element's timeout is its
// expiry less the time it is built at, not at the start of the call: an
// element sent a second later gets a second less, so that the kernel's ban
// ends when the store's does however long the batch took.
func TestTimeoutsCountedAsBuilt(t *testing.T) {
	const exp = int64(time.Hour)
	var at int64
	tick := func() int64 { at += int64(time.Second); return at }
	as := []addrExp{{netip.MustParseAddr("192.0.2.1"), exp}, {netip.MustParseAddr("192.0.2.2"), exp}, {netip.MustParseAddr("192.0.2.3"), never}}
	var got []time.Duration
	for u := range addrUnits(as, tick) {
		got = append(got, u[0].Timeout)
	}
	if want := []time.Duration{time.Hour - time.Second, time.Hour - 2*time.Second, 0}; !slices.Equal(got, want) {
		t.Errorf("address timeouts %v, want %v", got, want)
	}
	at = 0
	got = got[:0]
	for u := range netUnits(map[netip.Prefix]int64{netip.MustParsePrefix("198.51.100.0/24"): exp, netip.MustParsePrefix("203.0.113.0/24"): exp}, tick) {
		got = append(got, u[0].Timeout)
	}
	slices.Sort(got)
	if want := []time.Duration{time.Hour - 2*time.Second, time.Hour - time.Second}; !slices.Equal(got, want) {
		t.Errorf("prefix timeouts %v, want %v", got, want)
	}
}

// v4Addrs makes n addresses with an expiry, IPv6 if v6.
func v4Addrs(n int, v6 bool) []addrExp {
	out := make([]addrExp, n)
	for i := range out {
		a := v4At(i, 0)
		if v6 {
			a = v6At(i)
		}
		out[i] = addrExp{a, 1}
	}
	return out
}

// nets makes n disjoint /24 prefixes with an expiry.
func nets(n int) map[netip.Prefix]int64 {
	out := map[netip.Prefix]int64{}
	for i := range n {
		out[netip.PrefixFrom(v4At(i, 8), 24)] = 1
	}
	return out
}

func TestDedupe(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	in := func() []addrExp { return []addrExp{{b, 5}, {a, 9}, {b, 3}, {a, 1}} }
	if got := dedupe(in(), lastWins); !slices.Equal(got, []addrExp{{a, 1}, {b, 3}}) {
		t.Errorf("dedupe lastWins = %v", got)
	}
	if got := dedupe(in(), latest); !slices.Equal(got, []addrExp{{a, 9}, {b, 5}}) {
		t.Errorf("dedupe latest = %v", got)
	}
}

func TestNetElems(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		keys   []string
	}{
		{"10.0.0.0/24", []string{"10.0.0.0", "10.0.1.0"}},
		{"255.255.255.0/24", []string{"255.255.255.0"}},
		{"0.0.0.0/0", []string{"0.0.0.0"}},
		{"2001:db8::/64", []string{"2001:db8::", "2001:db8:0:1::"}},
	} {
		es := netElems(netip.MustParsePrefix(tc.prefix), 1, 0)
		if len(es) != len(tc.keys) {
			t.Fatalf("%s: %d elements, want %d", tc.prefix, len(es), len(tc.keys))
		}
		for i, e := range es {
			a, _ := netip.AddrFromSlice(e.Key)
			if a.String() != tc.keys[i] || e.IntervalEnd != (i == 1) {
				t.Errorf("%s: element %d = %v end=%v, want %s end=%v", tc.prefix, i, a, e.IntervalEnd, tc.keys[i], i == 1)
			}
		}
	}
}

func TestValidateJails(t *testing.T) {
	for _, tc := range []struct {
		jails []firewall.Jail
		ok    bool
	}{
		{[]firewall.Jail{{Name: "sshd", Ports: []uint16{22}}, {Name: "web-1_x"}}, true},
		{nil, true},
		{[]firewall.Jail{{Name: "SSHD"}}, false},
		{[]firewall.Jail{{Name: ""}}, false},
		{[]firewall.Jail{{Name: "a b"}}, false},
		{[]firewall.Jail{{Name: "a"}, {Name: "a"}}, false},
		{[]firewall.Jail{{Name: "a", Ports: []uint16{0}}}, false},
	} {
		if err := validateJails(tc.jails); (err == nil) != tc.ok {
			t.Errorf("validateJails(%v) = %v, want ok=%v", tc.jails, err, tc.ok)
		}
	}
}
