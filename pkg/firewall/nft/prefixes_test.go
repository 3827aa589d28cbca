package nft

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// pm builds a prefix map from prefix, expiry pairs.
func pm(kv ...any) map[netip.Prefix]int64 {
	m := map[netip.Prefix]int64{}
	for i := 0; i < len(kv); i += 2 {
		var exp int64
		switch v := kv[i+1].(type) {
		case int:
			exp = int64(v)
		case int64:
			exp = v
		}
		m[netip.MustParsePrefix(kv[i].(string))] = exp
	}
	return m
}

func TestCover(t *testing.T) {
	for _, tc := range []struct {
		name       string
		want, wont map[netip.Prefix]int64
	}{
		{"empty", pm(), pm()},
		{"disjoint", pm("10.0.0.0/24", 5, "10.0.1.0/24", 7), pm("10.0.0.0/24", 5, "10.0.1.0/24", 7)},
		{"child shorter-lived is covered", pm("10.0.0.0/16", 9, "10.0.1.0/24", 5), pm("10.0.0.0/16", 9)},
		{"child equal is covered", pm("10.0.0.0/16", 9, "10.0.1.0/24", 9), pm("10.0.0.0/16", 9)},
		{"parent without timeout covers all", pm("10.0.0.0/16", never, "10.0.1.0/24", 9), pm("10.0.0.0/16", never)},
		{"child longer-lived is cut out", pm("10.0.0.0/22", 5, "10.0.1.0/24", 9),
			pm("10.0.0.0/24", 5, "10.0.1.0/24", 9, "10.0.2.0/23", 5)},
		{"child without timeout is cut out", pm("10.0.0.0/23", 5, "10.0.0.0/24", never),
			pm("10.0.0.0/24", never, "10.0.1.0/24", 5)},
		{"grandchild outlives covered child", pm("10.0.0.0/22", 5, "10.0.0.0/23", 3, "10.0.0.0/24", 9),
			pm("10.0.0.0/24", 9, "10.0.1.0/24", 5, "10.0.2.0/23", 5)},
		{"three levels", pm("10.0.0.0/22", 3, "10.0.0.0/23", 5, "10.0.0.0/24", 9),
			pm("10.0.0.0/24", 9, "10.0.1.0/24", 5, "10.0.2.0/23", 3)},
		{"ipv6", pm("2001:db8::/32", 5, "2001:db8::/33", 9), pm("2001:db8::/33", 9, "2001:db8:8000::/33", 5)},
		{"whole space", pm("0.0.0.0/0", 5, "128.0.0.0/1", 9), pm("0.0.0.0/1", 5, "128.0.0.0/1", 9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cover(tc.want)
			if !maps.Equal(got, tc.wont) {
				t.Errorf("cover(%v) = %v, want %v", tc.want, got, tc.wont)
			}
			assertDisjoint(t, got)
		})
	}
}

// assertDisjoint checks no two prefixes overlap.
func assertDisjoint(t *testing.T, m map[netip.Prefix]int64) {
	t.Helper()
	ps := slices.Collect(maps.Keys(m))
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a.Overlaps(b) {
				t.Errorf("%v and %v overlap", a, b)
			}
		}
	}
}

func TestPlan(t *testing.T) {
	now := time.Now().UnixNano()
	later := now + int64(time.Hour)
	s := newNetState()
	s.want = pm("10.0.0.0/24", 0)
	s.want[netip.MustParsePrefix("10.0.0.0/24")] = later
	d := s.plan(now)
	if len(d.add) != 1 || len(d.del) != 0 || len(d.refresh) != 0 {
		t.Fatalf("first plan = %+v, want one addition", d)
	}
	s.have = d.next
	s.want[netip.MustParsePrefix("10.0.0.0/24")] = later + 1
	if d = s.plan(now); len(d.refresh) != 1 || len(d.add) != 0 {
		t.Fatalf("plan after new expiry = %+v, want one refresh", d)
	}
	s.have = d.next
	s.want[netip.MustParsePrefix("10.0.0.0/23")] = later + 2
	if d = s.plan(now); len(d.del) != 1 || len(d.add) != 1 {
		t.Fatalf("plan after wider prefix = %+v, want one deletion and one addition", d)
	}
	s.have = d.next
	s.want[netip.MustParsePrefix("192.0.2.0/24")] = now - 1
	if d = s.plan(now); !d.empty() || len(s.want) != 2 {
		t.Fatalf("plan with an expired prefix = %+v (want %v), want nothing", d, s.want)
	}
	s.have[netip.MustParsePrefix("192.0.2.0/24")] = now - int64(2*expiryGrace)
	if d = s.plan(now); !d.empty() {
		t.Fatalf("plan with a long expired element = %+v, want nothing", d)
	}
}

func TestNormPrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		kind     setKind
	}{
		{"192.0.2.1/32", "192.0.2.1/32", kindV4},
		{"192.0.2.1/24", "192.0.2.0/24", kindNet4},
		{"::ffff:192.0.2.1/128", "192.0.2.1/32", kindV4},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24", kindNet4},
		{"2001:db8::1/128", "2001:db8::1/128", kindV6},
		{"2001:db8::1/64", "2001:db8::/64", kindNet6},
	} {
		p, ok := normPrefix(netip.MustParsePrefix(tc.in))
		if !ok || p.String() != tc.want || kindOf(p) != tc.kind {
			t.Errorf("normPrefix(%s) = %v %v (kind %v), want %s (kind %v)", tc.in, p, ok, kindOf(p), tc.want, tc.kind)
		}
	}
	if _, ok := normPrefix(netip.Prefix{}); ok {
		t.Error("normPrefix accepted the zero prefix")
	}
}

func TestTimeoutAt(t *testing.T) {
	now := time.Now().UnixNano()
	for _, tc := range []struct {
		exp  int64
		want time.Duration
	}{
		{never, 0},
		{now + int64(time.Hour), time.Hour},
		{now + int64(time.Hour) + 1, time.Hour + time.Millisecond},
		{now - 5, time.Millisecond},
	} {
		if got := timeoutAt(tc.exp, now); got != tc.want {
			t.Errorf("timeoutAt(now%+d) = %v, want %v", tc.exp-now, got, tc.want)
		}
	}
}

func TestSetNames(t *testing.T) {
	for _, jail := range []string{"sshd", "a_v4", "web-1", "x_net6_3", "9"} {
		for k := setKind(0); k < numKinds; k++ {
			name := setName(jail, k, 42)
			p, ok := parseSetName(name)
			if !ok || p != (parsedName{jail: jail, kind: k, gen: 42}) {
				t.Errorf("parseSetName(%q) = %+v, %v", name, p, ok)
			}
		}
	}
	for _, name := range []string{"probe", "sshd_v4", "sshd_v5_1", "_v4_1", "sshd_v4_x", "__set0"} {
		if p, ok := parseSetName(name); ok {
			t.Errorf("parseSetName(%q) = %+v, want no match", name, p)
		}
	}
}
