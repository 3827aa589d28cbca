package jail

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// botnet is the shipped postfix jail's configuration of the defences.
func botnet() Config {
	c := cfg()
	c.Instant = Instant{HELO: []string{"ylmf-pc"}, Events: []event.Kind{event.Pregreet}}
	c.Learn = Learn{HELO: true, User: true, Distinct: 5, Window: time.Hour, TTL: 7 * 24 * time.Hour}
	c.Escalate = Escalate{Factor: 2, Max: 90 * 24 * time.Hour}
	c.Subnet = Subnet{V4: 24, V6: 64, Bans: 3, Window: 24 * time.Hour}
	c.Trust = 30 * 24 * time.Hour
	return c
}

type fstep struct {
	at         time.Duration
	addr       string
	kind       event.Kind
	helo, user string
	want       Outcome
	bans       string // the decided prefixes, separated by "; ", each with the start of its reason after '='
}

func runSteps(t *testing.T, j *Jail, steps []fstep) {
	t.Helper()
	for i, s := range steps {
		ev := event.Event{Time: t0.Add(s.at), Addr: netip.MustParseAddr(s.addr), Kind: s.kind, HELO: s.helo, User: s.user}
		ds, out := j.Observe(&ev, nil)
		var got []string
		for _, d := range ds {
			got = append(got, d.Prefix.String()+"="+d.Reason)
		}
		if out != s.want {
			t.Fatalf("step %d (%s %s): %v, want %v (bans %v)", i, s.addr, s.kind, out, s.want, got)
		}
		for _, w := range strings.Split(s.bans, "; ") {
			if w == "" {
				continue
			}
			found := false
			for _, g := range got {
				found = found || strings.HasPrefix(g, w)
			}
			if !found {
				t.Fatalf("step %d (%s %s): bans %q, want one starting %q", i, s.addr, s.kind, got, w)
			}
		}
		if s.bans == "" && len(got) > 0 {
			t.Fatalf("step %d: unexpected bans %q", i, got)
		}
	}
}

func TestFeatures(t *testing.T) {
	af, ok := event.AuthFailure, event.AuthSuccess
	cases := []struct {
		name   string
		ignore []string
		steps  []fstep
	}{
		{"EHLO ylmf-pc bans at once", nil, []fstep{
			{0, "203.0.113.7", event.Rejected, "ylmf-pc", "", Banned, "203.0.113.7/32=instant helo=ylmf-pc"},
			{1, "203.0.113.8", event.Rejected, "YLMF-PC", "", Banned, "203.0.113.8/32=instant helo=YLMF-PC"},
		}},
		{"pregreet bans at once", nil, []fstep{
			{0, "203.0.113.7", event.Pregreet, "", "", Banned, "203.0.113.7/32=instant pregreet"},
		}},
		{"a user name tried from five addresses becomes a fingerprint", nil, []fstep{
			{0, "198.51.100.1", af, "", "sales", Counted, ""},
			{1, "198.51.101.2", af, "", "sales", Counted, ""},
			{2, "198.51.102.3", af, "", "sales", Counted, ""},
			{3, "198.51.103.4", af, "", "sales", Counted, ""},
			{4, "198.51.104.5", af, "", "Sales", Banned,
				"198.51.104.5/32=fingerprint; 198.51.100.1/32; 198.51.101.2/32; 198.51.102.3/32; 198.51.103.4/32"},
			{5, "198.51.105.6", af, "", "sales", Banned, "198.51.105.6/32=fingerprint user=sales"},
		}},
		{"a user name that also logged in is never learned", nil, []fstep{
			{0, "192.0.2.10", ok, "", "info", NoWeight, ""},
			{1, "198.51.100.1", af, "", "info", Counted, ""},
			{2, "198.51.101.2", af, "", "info", Counted, ""},
			{3, "198.51.102.3", af, "", "info", Counted, ""},
			{4, "198.51.103.4", af, "", "info", Counted, ""},
			{5, "198.51.104.5", af, "", "info", Counted, ""},
		}},
		{"policy rejections never teach a fingerprint (mail servers share HELO names)", nil, []fstep{
			{0, "198.51.100.1", event.Rejected, "out.esp.example", "", Counted, ""},
			{1, "198.51.101.2", event.Rejected, "out.esp.example", "", Counted, ""},
			{2, "198.51.102.3", event.Rejected, "out.esp.example", "", Counted, ""},
			{3, "198.51.103.4", event.Rejected, "out.esp.example", "", Counted, ""},
			{4, "198.51.104.5", event.Rejected, "out.esp.example", "", Counted, ""},
		}},
		{"values older than the window do not add up", nil, []fstep{
			{0, "198.51.100.1", af, "", "x", Counted, ""},
			{time.Minute, "198.51.101.2", af, "", "x", Counted, ""},
			{2 * time.Minute, "198.51.102.3", af, "", "x", Counted, ""},
			{3 * time.Minute, "198.51.103.4", af, "", "x", Counted, ""},
			{time.Hour + time.Minute, "198.51.104.5", af, "", "x", Counted, ""},
		}},
		{"three banned addresses of a /24 ban the /24", nil, []fstep{
			{0, "203.0.113.1", event.Pregreet, "", "", Banned, "203.0.113.1/32"},
			{time.Minute, "203.0.113.2", event.Pregreet, "", "", Banned, "203.0.113.2/32"},
			{2 * time.Minute, "203.0.113.3", event.Pregreet, "", "", Banned, "203.0.113.3/32; 203.0.113.0/24=subnet"},
			{3 * time.Minute, "203.0.113.99", af, "", "", AlreadyBanned, ""},
		}},
		{"a /24 holding an ignored address is never banned", []string{"203.0.113.200"}, []fstep{
			{0, "203.0.113.1", event.Pregreet, "", "", Banned, "203.0.113.1/32"},
			{1, "203.0.113.2", event.Pregreet, "", "", Banned, "203.0.113.2/32"},
			{2, "203.0.113.3", event.Pregreet, "", "", Banned, "203.0.113.3/32"},
			{3, "203.0.113.99", event.Pregreet, "", "", Banned, "203.0.113.99/32"},
		}},
		{"a /24 holding a trusted address is never banned", nil, []fstep{
			{0, "203.0.113.200", ok, "", "alice", NoWeight, ""},
			{1, "203.0.113.1", event.Pregreet, "", "", Banned, "203.0.113.1/32"},
			{2, "203.0.113.2", event.Pregreet, "", "", Banned, "203.0.113.2/32"},
			{3, "203.0.113.3", event.Pregreet, "", "", Banned, "203.0.113.3/32"},
		}},
		{"IPv6 is counted and banned per /64", nil, []fstep{
			{0, "2001:db8:1:2::1", af, "", "", Counted, ""},
			{1, "2001:db8:1:2::2", af, "", "", Counted, ""},
			{2, "2001:db8:1:2:aaaa::3", af, "", "", Counted, ""},
			{3, "2001:db8:1:2::4", af, "", "", Counted, ""},
			{4, "2001:db8:1:2::5", af, "", "", Banned, "2001:db8:1:2::/64=auth_failure"},
			{5, "2001:db8:1:2::6", af, "", "", AlreadyBanned, ""},
			{6, "2001:db8:1:3::6", af, "", "", Counted, ""},
		}},
		{"a trusted address is not banned for failed logins, but is for pregreet", nil, []fstep{
			{0, "192.0.2.50", ok, "", "alice", NoWeight, ""},
			{time.Hour, "192.0.2.50", af, "", "alice", Trusted, ""},
			{time.Hour + 1, "192.0.2.50", af, "", "alice", Trusted, ""},
			{time.Hour + 2, "192.0.2.50", event.Disconnect, "", "", Trusted, ""},
			{time.Hour + 3, "192.0.2.50", af, "", "alice", Trusted, ""},
			{time.Hour + 4, "192.0.2.50", af, "", "alice", Trusted, ""},
			{time.Hour + 5, "192.0.2.50", event.BadHELO, "DESKTOP-4F2K9", "", Trusted, ""},
			{time.Hour + 6, "192.0.2.50", event.Pregreet, "", "", Banned, "192.0.2.50/32=instant pregreet"},
		}},
		{"a /64 holding a trusted address: the offender alone is banned", nil, []fstep{
			{0, "2001:db8:c0:1::a", ok, "", "alice", NoWeight, ""},
			{1, "2001:db8:c0:1::b", af, "", "", Counted, ""},
			{2, "2001:db8:c0:1::b", af, "", "", Counted, ""},
			{3, "2001:db8:c0:1::b", af, "", "", Counted, ""},
			{4, "2001:db8:c0:1::b", af, "", "", Counted, ""},
			{5, "2001:db8:c0:1::b", af, "", "", Banned, "2001:db8:c0:1::b/128=auth_failure"},
			{6, "2001:db8:c0:1::a", af, "", "alice", Trusted, ""},
		}},
		{"one IPv6 host changing address within its /64 teaches nothing", nil, []fstep{
			{0, "2001:db8:1:2::1", af, "", "root", Counted, ""},
			{1, "2001:db8:1:2::2", af, "", "root", Counted, ""},
			{2, "2001:db8:1:2::3", af, "", "root", Counted, ""},
			{3, "2001:db8:1:2::4", af, "", "root", Counted, ""},
			{4, "2001:db8:1:3::5", af, "", "root", Counted, ""},
		}},
		{"a banned address that logs in is not trusted", nil, []fstep{
			{0, "192.0.2.60", event.Pregreet, "", "", Banned, "192.0.2.60/32"},
			{1, "192.0.2.60", ok, "", "alice", NoWeight, ""},
			{7*24*time.Hour + 1, "192.0.2.60", af, "", "alice", Counted, ""},
		}},
		{"trust runs out", nil, []fstep{
			{0, "192.0.2.50", ok, "", "alice", NoWeight, ""},
			{31 * 24 * time.Hour, "192.0.2.50", af, "", "", Counted, ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ign []netip.Prefix
			for _, a := range c.ignore {
				ign = append(ign, netip.MustParsePrefix(a+"/32"))
			}
			runSteps(t, New(botnet(), NewIgnore(ign...)), c.steps)
		})
	}
}

func TestSubnetBanLastsTheLongest(t *testing.T) {
	c := botnet()
	j := New(c, nil)
	j.SetPriorBans(netip.MustParseAddr("203.0.113.2"), 2) // its next ban is its third: 4 × 7d
	var all []Decision
	for i, a := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Minute), Addr: netip.MustParseAddr(a), Kind: event.Pregreet}
		ds, _ := j.Observe(&ev, nil)
		all = append(all, ds...)
	}
	if len(all) != 4 {
		t.Fatalf("decisions: %+v", all)
	}
	if got := all[1].End.Sub(all[1].Start); got != 28*24*time.Hour || all[1].Nth != 3 {
		t.Errorf("third ban of 203.0.113.2 lasts %v (nth %d), want 28 days", got, all[1].Nth)
	}
	net := all[3]
	if net.Prefix.String() != "203.0.113.0/24" || !net.End.Equal(all[1].End) {
		t.Errorf("subnet ban %v until %v, want 203.0.113.0/24 until %v", net.Prefix, net.End, all[1].End)
	}
}

func TestEscalation(t *testing.T) {
	c := botnet()
	c.Escalate = Escalate{Factor: 2, Max: 20 * 24 * time.Hour}
	c.Subnet = Subnet{}
	j := New(c, nil)
	a := netip.MustParseAddr("203.0.113.7")
	var lengths []string
	at := t0
	for i := 0; i < 4; i++ {
		ev := event.Event{Time: at, Addr: a, Kind: event.Pregreet}
		ds, out := j.Observe(&ev, nil)
		if out != Banned {
			t.Fatalf("ban %d: %v", i+1, out)
		}
		lengths = append(lengths, fmt.Sprint(ds[0].End.Sub(ds[0].Start)))
		if want := fmt.Sprintf("(repeat offender: ban %d)", i+1); i > 0 && !strings.HasSuffix(ds[0].Reason, want) {
			t.Errorf("ban %d reason %q lacks %q", i+1, ds[0].Reason, want)
		}
		at = ds[0].End // the next attack after the ban ran out
	}
	if got := strings.Join(lengths, " "); got != "168h0m0s 336h0m0s 480h0m0s 480h0m0s" {
		t.Errorf("ban lengths %s, want 7d, 14d, then the 20d maximum", got)
	}
}

func TestForgetFingerprint(t *testing.T) {
	j := New(botnet(), nil)
	for i := 0; i < 5; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i)), Addr: netip.AddrFrom4([4]byte{198, 51, byte(i), 1}), Kind: event.AuthFailure, User: "admin"}
		j.Observe(&ev, nil)
	}
	if fps := j.Fingerprints(t0.UnixNano()); len(fps) != 1 || fps[0].Value != "user=admin" {
		t.Fatalf("fingerprints %+v", fps)
	}
	if !j.Forget("admin", t0.UnixNano()) || len(j.Fingerprints(t0.UnixNano())) != 0 {
		t.Fatal("not forgotten")
	}
	// Forgotten values are not learned again.
	for i := 10; i < 20; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i)), Addr: netip.AddrFrom4([4]byte{198, 51, byte(i), 1}), Kind: event.AuthFailure, User: "admin"}
		if _, out := j.Observe(&ev, nil); out != Counted {
			t.Fatalf("after forget: %v", out)
		}
	}
}

func TestAddStrikes(t *testing.T) {
	j := New(botnet(), nil)
	a := netip.MustParseAddr("203.0.113.7")
	ev := event.Event{Time: t0, Addr: a, Kind: event.AuthFailure}
	if _, out := j.Observe(&ev, nil); out != Counted {
		t.Fatal(out)
	}
	// A DNSBL listing of weight 4 makes 5.
	ds, out := j.AddStrikes(a, t0, event.RBLReject, 4, nil)
	if out != Banned || len(ds) != 1 || ds[0].Reason != "rbl_reject,auth_failure" || ds[0].Strikes != 5 {
		t.Fatalf("%v %+v", out, ds)
	}
	// Trusted addresses get none.
	ok := event.Event{Time: t0, Addr: netip.MustParseAddr("192.0.2.9"), Kind: event.AuthSuccess}
	j.Observe(&ok, nil)
	if _, out := j.AddStrikes(ok.Addr, t0.Add(time.Minute), event.RBLReject, 40, nil); out != Trusted {
		t.Errorf("trusted: %v", out)
	}
}

// TestFloodOfDistinctValues fills the learner with fresh user names and
// goes on sending new ones: the table stays full and bounded, sweeps (which
// walk the whole table) stay rare, and once the window has passed a sweep
// makes room and values are learned again.
func TestFloodOfDistinctValues(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 values")
	}
	c := botnet()
	c.MaxStrikes = 1000 // no bans: only learning is watched
	j := New(c, nil)
	obs := func(i int, at time.Duration, user string) {
		ev := event.Event{Time: t0.Add(at), Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Kind: event.AuthFailure, User: user}
		j.Observe(&ev, nil)
	}
	extra := 50_000
	for i := 0; i < maxValues+extra; i++ {
		obs(i, time.Duration(i)*time.Microsecond, fmt.Sprintf("u%d", i))
	}
	l := j.learn
	if len(l.states) != maxValues {
		t.Fatalf("%d values watched, want the cap %d", len(l.states), maxValues)
	}
	if max := extra/(maxValues/16) + 2; l.sweeps > max {
		t.Fatalf("%d sweeps for %d refused values, want at most %d", l.sweeps, extra, max)
	}
	// An hour later the watched values are stale: a new one is watched,
	// and five addresses presenting it teach it.
	for i := 0; i < 5; i++ {
		obs(i, 2*time.Hour+time.Duration(i)*time.Second, "fresh")
	}
	if fps := j.Fingerprints(t0.Add(2 * time.Hour).UnixNano()); len(fps) != 1 || fps[0].Value != "user=fresh" {
		t.Fatalf("fingerprints after the window: %+v", fps)
	}
}
