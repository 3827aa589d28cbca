package jail

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

var t0 = time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)

func weights(m map[event.Kind]int) [event.NumKinds]int {
	var w [event.NumKinds]int
	for i := range w {
		w[i] = 1
	}
	w[event.AuthSuccess.Index()] = 0
	for k, v := range m {
		w[k.Index()] = v
	}
	return w
}

func cfg() Config {
	return Config{Name: "postfix", MaxStrikes: 5, FindTime: 10 * time.Minute, BanTime: 7 * 24 * time.Hour,
		Weights: weights(map[event.Kind]int{event.Pregreet: 5, event.BadHELO: 2})}
}

// observe runs one event and returns the outcome and the first decision.
func observe(j *Jail, ev *event.Event) (Outcome, Decision) {
	ds, out := j.Observe(ev, nil)
	var d Decision
	if len(ds) > 0 {
		d = ds[0]
	}
	return out, d
}

type step struct {
	at   time.Duration // after t0
	addr string
	kind event.Kind
	want Outcome
}

func TestObserve(t *testing.T) {
	const bot = "203.0.113.7"
	af := event.AuthFailure
	cases := []struct {
		name  string
		steps []step
	}{
		{"five failures within find_time ban on the fifth", []step{
			{0, bot, af, Counted}, {time.Minute, bot, af, Counted}, {2 * time.Minute, bot, af, Counted},
			{3 * time.Minute, bot, af, Counted}, {4 * time.Minute, bot, af, Banned},
		}},
		{"four failures do not ban", []step{
			{0, bot, af, Counted}, {time.Minute, bot, af, Counted}, {2 * time.Minute, bot, af, Counted},
			{3 * time.Minute, bot, af, Counted}, {9 * time.Minute, "203.0.113.8", af, Counted},
		}},
		{"a strike exactly find_time old no longer counts", []step{
			{0, bot, af, Counted}, {time.Minute, bot, af, Counted}, {2 * time.Minute, bot, af, Counted},
			{3 * time.Minute, bot, af, Counted}, {10 * time.Minute, bot, af, Counted},
			{10*time.Minute + time.Second, bot, af, Banned},
		}},
		{"older strikes don't count", []step{
			{0, bot, af, Counted}, {time.Minute, bot, af, Counted}, {2 * time.Minute, bot, af, Counted},
			{3 * time.Minute, bot, af, Counted}, {20 * time.Minute, bot, af, Counted}, {21 * time.Minute, bot, af, Counted},
		}},
		{"weights add up: bad HELO counts 2", []step{
			{0, bot, event.BadHELO, Counted}, {time.Second, bot, event.BadHELO, Counted}, {2 * time.Second, bot, af, Banned},
		}},
		{"pregreet alone bans", []step{{0, bot, event.Pregreet, Banned}}},
		{"auth success never counts", []step{
			{0, bot, event.AuthSuccess, NoWeight}, {1, bot, event.AuthSuccess, NoWeight},
		}},
		{"addresses are counted apart", []step{
			{0, "198.51.100.1", af, Counted}, {1, "198.51.100.2", af, Counted}, {2, "198.51.100.3", af, Counted},
			{3, "198.51.100.4", af, Counted}, {4, "198.51.100.5", af, Counted},
		}},
		{"a banned address is not counted again until the ban ends", []step{
			{0, bot, event.Pregreet, Banned}, {time.Minute, bot, event.Pregreet, AlreadyBanned},
			{7*24*time.Hour - time.Second, bot, af, AlreadyBanned}, {7 * 24 * time.Hour, bot, event.Pregreet, Banned},
		}},
		{"IPv4-mapped IPv6 is the IPv4 address", []step{
			{0, "::ffff:203.0.113.7", event.Pregreet, Banned}, {1, bot, af, AlreadyBanned},
		}},
		{"loopback is never banned", []step{
			{0, "127.0.0.1", event.Pregreet, Ignored}, {1, "::1", event.Pregreet, Ignored}, {2, "127.8.9.1", af, Ignored},
		}},
		{"ignored prefixes are never banned", []step{
			{0, "192.0.2.55", event.Pregreet, Ignored}, {1, "2001:db8:1::9", event.Pregreet, Ignored},
			{2, "2001:db8:2::9", event.Pregreet, Banned},
		}},
	}
	ign := NewIgnore(netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/48"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := New(cfg(), ign)
			for i, s := range c.steps {
				ev := event.Event{Time: t0.Add(s.at), Addr: netip.MustParseAddr(s.addr), Kind: s.kind}
				if got, _ := observe(j, &ev); got != s.want {
					t.Fatalf("step %d (%s %s at +%v): %v, want %v", i, s.addr, s.kind, s.at, got, s.want)
				}
			}
		})
	}
}

func TestDecision(t *testing.T) {
	j := New(cfg(), nil)
	a := netip.MustParseAddr("203.0.113.7")
	var d Decision
	kinds := []event.Kind{event.AuthFailure, event.BadHELO, event.AuthFailure, event.AuthFailure}
	var out Outcome
	for i, k := range kinds {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Minute), Addr: a, Kind: k}
		out, d = observe(j, &ev)
	}
	if out != Banned {
		t.Fatalf("outcome %v", out)
	}
	want := Decision{Prefix: netip.PrefixFrom(a, 32), Strikes: 5, First: t0, Start: t0.Add(3 * time.Minute),
		End: t0.Add(3*time.Minute + 7*24*time.Hour), Reason: "auth_failure,bad_helo", Nth: 1}
	if d != want {
		t.Errorf("decision\n got  %+v\n want %+v", d, want)
	}
	if j.Tracked() != 0 {
		t.Errorf("a banned address is still tracked")
	}
}

func TestNoTimeNoStrike(t *testing.T) {
	j := New(cfg(), nil)
	ev := event.Event{Addr: netip.MustParseAddr("203.0.113.7"), Kind: event.Pregreet}
	if got := outcomeOf(j.Observe(&ev, nil)); got != NoWeight {
		t.Fatalf("an event without a time: %v", got)
	}
}

func TestMarkBannedPrefix(t *testing.T) {
	j := New(cfg(), nil)
	j.MarkBanned(netip.MustParsePrefix("198.51.100.0/24"), t0.Add(time.Hour))
	ev := event.Event{Time: t0, Addr: netip.MustParseAddr("198.51.100.9"), Kind: event.Pregreet}
	if got := outcomeOf(j.Observe(&ev, nil)); got != AlreadyBanned {
		t.Fatalf("inside a banned prefix: %v", got)
	}
	j.Unmark(netip.MustParsePrefix("198.51.100.0/24"))
	if got := outcomeOf(j.Observe(&ev, nil)); got != Banned {
		t.Fatalf("after unmark: %v", got)
	}
}

// Replay after a restart rebuilds the window exactly: strikes that made a
// ban are spent, the rest still count.
func TestReplay(t *testing.T) {
	live := New(cfg(), nil)
	a := netip.MustParseAddr("203.0.113.7")
	var evs []event.Event
	for i := 0; i < 7; i++ {
		evs = append(evs, event.Event{Time: t0.Add(time.Duration(i) * time.Second), Addr: a, Kind: event.AuthFailure})
	}
	var bans int
	var counted []event.Event
	for i := range evs {
		switch outcomeOf(live.Observe(&evs[i], nil)) {
		case Banned:
			bans++
			counted = append(counted, evs[i])
		case Counted:
			counted = append(counted, evs[i])
		}
	}
	if bans != 1 || len(counted) != 5 {
		t.Fatalf("live: %d bans, %d strikes counted", bans, len(counted))
	}
	// The restarted jail replays the stored strikes, then learns of the ban.
	restarted := New(cfg(), nil)
	for i := range counted {
		restarted.Replay(&counted[i])
	}
	if restarted.Tracked() != 0 {
		t.Fatalf("replayed strikes that made a ban still count")
	}
	// Unbanned by an admin: a new attack needs five new strikes.
	for i := 0; i < 4; i++ {
		ev := event.Event{Time: t0.Add(time.Minute + time.Duration(i)*time.Second), Addr: a, Kind: event.AuthFailure}
		if got := outcomeOf(restarted.Observe(&ev, nil)); got != Counted {
			t.Fatalf("strike %d: %v", i, got)
		}
	}
}

func TestCapEvictsStalest(t *testing.T) {
	c := cfg()
	c.MaxTracked = 1000
	j := New(c, nil)
	for i := 0; i < 5000; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Addr: a, Kind: event.AuthFailure}
		j.Observe(&ev, nil)
		if j.Tracked() > 1000 {
			t.Fatalf("tracked %d > cap", j.Tracked())
		}
	}
	// The freshest 1000 are kept: 4 more strikes of the newest address ban it.
	last := netip.AddrFrom4([4]byte{10, 0, 4999 >> 8 & 255, 4999 & 255})
	var got Outcome
	for i := 0; i < 4; i++ {
		ev := event.Event{Time: t0.Add(6 * time.Second), Addr: last, Kind: event.AuthFailure}
		got = outcomeOf(j.Observe(&ev, nil))
	}
	if got != Banned {
		t.Errorf("the freshest address lost its strikes: %v", got)
	}
	// The stalest was dropped: it starts again from one strike.
	first := netip.AddrFrom4([4]byte{10, 0, 0, 0})
	for i := 0; i < 4; i++ {
		ev := event.Event{Time: t0.Add(6 * time.Second), Addr: first, Kind: event.AuthFailure}
		got = outcomeOf(j.Observe(&ev, nil))
	}
	if got != Counted {
		t.Errorf("an evicted address kept its strikes: %v", got)
	}
}

func TestSweep(t *testing.T) {
	j := New(cfg(), nil)
	for i := 0; i < 100; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Second), Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Kind: event.AuthFailure}
		j.Observe(&ev, nil)
	}
	if n := j.Sweep(t0.Add(10*time.Minute + 49*time.Second)); n != 50 || j.Tracked() != 50 {
		t.Fatalf("swept %d, %d left; want 50, 50", n, j.Tracked())
	}
}

func TestIgnore(t *testing.T) {
	ig := NewIgnore(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"))
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "11.0.0.1": false, "192.0.2.7": true, "192.0.2.8": false, "127.0.0.1": true,
		"::1": true, "2001:db8:ffff::1": true, "2001:db9::1": false, "::ffff:10.9.9.9": true,
	} {
		if got := ig.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v", addr, got)
		}
	}
	if !ig.Overlaps(netip.MustParsePrefix("192.0.2.0/24")) || ig.Overlaps(netip.MustParsePrefix("198.51.100.0/24")) {
		t.Error("Overlaps")
	}
}

func ExampleJail_Observe() {
	j := New(Config{Name: "postfix", MaxStrikes: 3, FindTime: time.Minute, BanTime: time.Hour,
		Weights: weights(nil)}, nil)
	for i := 0; i < 3; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Second), Addr: netip.MustParseAddr("203.0.113.7"), Kind: event.AuthFailure}
		if out, d := observe(j, &ev); out == Banned {
			fmt.Println(out, d.Prefix, d.Strikes, d.End.Sub(d.Start), d.Reason)
		} else {
			fmt.Println(out)
		}
	}
	// Output:
	// counted
	// counted
	// banned 203.0.113.7/32 3 1h0m0s auth_failure
}

// outcomeOf returns the outcome of Observe's results.
func outcomeOf(_ []Decision, out Outcome) Outcome { return out }
