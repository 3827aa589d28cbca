//go:build linux

package nft

import (
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
)

func TestMeterTimeout(t *testing.T) {
	for _, tc := range []struct {
		rate  uint64
		per   time.Duration
		burst uint32
		want  time.Duration
	}{
		{10, time.Minute, 5, time.Minute},
		{60, time.Minute, 3, time.Minute},
		{100, time.Second, 0, time.Minute},
		{1, time.Minute, 5, 5 * time.Minute},
		{3, time.Minute, 10, 200 * time.Second},
		{10, time.Hour, 5, time.Hour},
		{1, time.Hour, 5, 5 * time.Hour},
		{1, 24 * time.Hour, 1000, 7 * 24 * time.Hour},
		{1, 24 * time.Hour, 1 << 31, 7 * 24 * time.Hour},
	} {
		l := &firewall.ConnLimit{Rate: tc.rate, Per: tc.per, Burst: tc.burst}
		if got := meterTimeout(l); got != tc.want {
			t.Errorf("meterTimeout(%d/%v burst %d) = %v, want %v", tc.rate, tc.per, tc.burst, got, tc.want)
		}
	}
}

func TestSameLimit(t *testing.T) {
	a := &firewall.ConnLimit{Rate: 10, Per: time.Minute}
	for _, tc := range []struct {
		b    *firewall.ConnLimit
		want bool
	}{
		{&firewall.ConnLimit{Rate: 10, Per: time.Minute, Burst: 5, Ban: true, BanTimeout: time.Hour}, true},
		{&firewall.ConnLimit{Rate: 10, Per: time.Minute, Burst: 6}, false},
		{&firewall.ConnLimit{Rate: 11, Per: time.Minute}, false},
		{&firewall.ConnLimit{Rate: 10, Per: time.Hour}, false},
		{nil, false},
	} {
		if got := sameLimit(a, tc.b); got != tc.want {
			t.Errorf("sameLimit(%+v, %+v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
	if !sameLimit(nil, nil) {
		t.Error("sameLimit(nil, nil) = false")
	}
}

func TestConnSetNames(t *testing.T) {
	b := &Backend{table: &nftables.Table{Name: "banwatch"}}
	sets := b.newConnSets(firewall.Jail{Name: "a_v4", ConnLimit: &firewall.ConnLimit{Rate: 1, Per: time.Second}})
	want := [numConnKinds]string{"a_v4_meter4", "a_v4_meter6", "", ""}
	for k, s := range sets {
		name := ""
		if s != nil {
			name = s.Name
			if !connSetMatches(s, connKind(k)) {
				t.Errorf("set %s does not match its own kind", name)
			}
		}
		if name != want[k] {
			t.Errorf("conn set %v = %q, want %q", connKind(k), name, want[k])
		}
	}
	for k := connKind(0); k < numConnKinds; k++ {
		name := connSetName("x_net6_3", k)
		if p, ok := parseSetName(name); ok {
			t.Errorf("parseSetName(%q) = %+v, want no match", name, p)
		}
	}
}

func TestValidateConnLimits(t *testing.T) {
	jail := func(l firewall.ConnLimit) []firewall.Jail {
		return []firewall.Jail{{Name: "smtp", Ports: []uint16{25}, ConnLimit: &l}}
	}
	for _, tc := range []struct {
		l  firewall.ConnLimit
		ok bool
	}{
		{firewall.ConnLimit{Rate: 10, Per: time.Minute, Burst: 5}, true},
		{firewall.ConnLimit{Rate: 1, Per: 24 * time.Hour}, true},
		{firewall.ConnLimit{Rate: 10, Per: time.Minute, Ban: true, BanTimeout: time.Hour}, true},
		{firewall.ConnLimit{Rate: 0, Per: time.Minute}, false},
		{firewall.ConnLimit{Rate: 10, Per: 2 * time.Minute}, false},
		{firewall.ConnLimit{Rate: 10}, false},
		{firewall.ConnLimit{Rate: 10, Per: time.Minute, Ban: true}, false},
	} {
		if err := validateJails(jail(tc.l)); (err == nil) != tc.ok {
			t.Errorf("validateJails with %+v = %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}
