package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
)

// A jail's ban committed without evidence gets the lines of its strikes,
// those of earlier batches too, within its window, newest kept, oldest first.
func TestEvidenceFromStrikes(t *testing.T) {
	s := openTest(t, "")
	a := netip.MustParseAddr("203.0.113.7")
	other := netip.MustParseAddr("203.0.113.8")
	strike := func(addr netip.Addr, jail string, i int) ban.Strike {
		return ban.Strike{Jail: jail, Addr: addr, Time: t0.Add(time.Duration(i) * time.Second), Kind: event.AuthFailure,
			Weight: 1, Line: fmt.Sprintf("line %d of %s in %s", i, addr, jail)}
	}
	// Strike 0 is outside the ban's window; 1..3 in an earlier batch.
	commit(t, s, Batch{Strikes: []ban.Strike{strike(a, "postfix", 0), strike(a, "postfix", 1), strike(a, "postfix", 2),
		strike(a, "postfix", 3), strike(other, "postfix", 3), strike(a, "dovecot", 3)}})
	b := &ban.Ban{Prefix: ban.PrefixOf(a), Jail: "postfix", Origin: ban.OriginJail, Start: t0.Add(5 * time.Second),
		End: t0.Add(time.Hour), Strikes: 5, Reason: "auth_failure", FirstEvent: t0.Add(time.Second), LastEvent: t0.Add(5 * time.Second)}
	commit(t, s, Batch{Strikes: []ban.Strike{strike(a, "postfix", 4), strike(a, "postfix", 5)}, Bans: []*ban.Ban{b},
		EvidenceLimit: map[string]int{"postfix": 4}})
	want := []string{"line 2 of 203.0.113.7 in postfix", "line 3 of 203.0.113.7 in postfix",
		"line 4 of 203.0.113.7 in postfix", "line 5 of 203.0.113.7 in postfix"}
	if !slices.Equal(b.Evidence, want) {
		t.Errorf("Commit set evidence %q, want %q", b.Evidence, want)
	}
	h, err := s.History(context.Background(), Query{Prefix: ban.PrefixOf(a)})
	if err != nil || len(h) != 1 {
		t.Fatalf("history: %v %v", h, err)
	}
	if !slices.Equal(h[0].Evidence, want) {
		t.Errorf("stored evidence %q, want %q", h[0].Evidence, want)
	}
}

func TestUnbanAllAndCountAll(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	commit(t, s, Batch{Bans: []*ban.Ban{
		mkBan("203.0.113.1", "postfix", t0, time.Hour), mkBan("203.0.113.2", "postfix", t0, time.Hour),
		mkBan("203.0.113.3", "dovecot", t0, time.Hour), mkBan("198.51.100.0/24", "manual", t0, time.Hour),
	}})
	got, err := s.UnbanAll(ctx, "postfix", t0.Add(time.Minute), "uid 0")
	if err != nil || len(got) != 2 {
		t.Fatalf("UnbanAll(postfix) = %d bans, %v", len(got), err)
	}
	for _, b := range got {
		if b.Ended != ban.EndUnbanned || b.EndedBy != "uid 0" || !b.EndedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("ended %+v", b)
		}
	}
	act, _ := s.CountActive(ctx, t0.Add(2*time.Minute))
	if act["postfix"] != 0 || act["dovecot"] != 1 || act["manual"] != 1 {
		t.Errorf("active after UnbanAll(postfix): %v", act)
	}
	if got, err := s.UnbanAll(ctx, "", t0.Add(2*time.Minute), "uid 0"); err != nil || len(got) != 2 {
		t.Fatalf("UnbanAll() = %d bans, %v", len(got), err)
	}
	all, err := s.CountAll(ctx)
	if err != nil || all["postfix"] != 2 || all["dovecot"] != 1 || all["manual"] != 1 {
		t.Errorf("CountAll = %v, %v", all, err)
	}
}

func TestBanCounts(t *testing.T) {
	s := openTest(t, "")
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("203.0.113.1", "postfix", t0, time.Hour), mkBan("203.0.113.2", "postfix", t0, time.Hour)}})
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("203.0.113.1", "postfix", t0.Add(2*time.Hour), time.Hour),
		mkBan("2001:db8::1", "postfix", t0, time.Hour), mkBan("198.51.100.0/24", "postfix", t0, time.Hour),
		mkBan("203.0.113.1", "dovecot", t0, time.Hour), mkBan("203.0.113.3", "postfix", t0.Add(-48*time.Hour), time.Hour)}})
	got, err := s.BanCounts(context.Background(), "postfix", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]int{netip.MustParseAddr("203.0.113.1"): 2, netip.MustParseAddr("203.0.113.2"): 1, netip.MustParseAddr("2001:db8::1"): 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("BanCounts = %v, want %v", got, want)
	}
}

// Evidence is found whatever the window's length (short, many seconds,
// days), at the edges of the window, and at times before 1970.
func TestEvidenceWindows(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::7")
	other := netip.MustParseAddr("2001:db8::8")
	const bucket = time.Duration(1) << 32 // about 4.3 s
	for _, c := range []struct {
		name        string
		base        time.Time
		step        time.Duration // between the strikes
		first, last int           // the ban's window: strikes first..last
		limit       int
	}{
		{"one bucket", t0, time.Millisecond, 2, 6, 10},
		{"many buckets", t0, bucket / 3, 2, 40, 10},
		{"many buckets, newest kept", t0, bucket + time.Second, 0, 40, 3},
		{"longer than the buckets looked up", t0, 512 * bucket / 8, 1, 30, 50},
		{"before 1970", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), bucket / 2, 3, 20, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, "")
			at := func(i int) time.Time { return c.base.Add(time.Duration(i) * c.step) }
			var strikes []ban.Strike
			for i := range 45 {
				for _, k := range []struct {
					addr netip.Addr
					jail string
				}{{a, "postfix"}, {other, "postfix"}, {a, "dovecot"}} {
					strikes = append(strikes, ban.Strike{Jail: k.jail, Addr: k.addr, Time: at(i), Kind: event.AuthFailure,
						Weight: 1, Line: fmt.Sprintf("line %d of %s in %s", i, k.addr, k.jail)})
				}
			}
			commit(t, s, Batch{Strikes: strikes})
			b := &ban.Ban{Prefix: ban.PrefixOf(a), Jail: "postfix", Origin: ban.OriginJail, Start: at(c.last),
				End: at(c.last).Add(time.Hour), Strikes: 5, Reason: "auth_failure", FirstEvent: at(c.first), LastEvent: at(c.last)}
			commit(t, s, Batch{Bans: []*ban.Ban{b}, EvidenceLimit: map[string]int{"postfix": c.limit}})
			var want []string
			for i := max(c.first, c.last-c.limit+1); i <= c.last; i++ {
				want = append(want, fmt.Sprintf("line %d of %s in postfix", i, a))
			}
			if !slices.Equal(b.Evidence, want) {
				t.Errorf("evidence %q,\nwant %q", b.Evidence, want)
			}
		})
	}
}

// A ban committed with all its strikes in the same batch takes its
// evidence from them (batchStrikes); the evidence is the same as when the
// strikes were committed before and the store is asked.
func TestEvidenceInBatch(t *testing.T) {
	a := netip.MustParseAddr("203.0.113.7")
	b6 := netip.MustParseAddr("2001:db8::7")
	other := netip.MustParseAddr("203.0.113.8")
	strike := func(addr netip.Addr, jail string, sec, weight int) ban.Strike {
		return ban.Strike{Jail: jail, Addr: addr, Time: t0.Add(time.Duration(sec) * time.Second), Kind: event.AuthFailure,
			Weight: weight, Line: fmt.Sprintf("%s in %s at %d weighing %d", addr, jail, sec, weight)}
	}
	jailBan := func(p string, jail string, first, last, strikes int) *ban.Ban {
		return &ban.Ban{Prefix: netip.MustParsePrefix(p), Jail: jail, Origin: ban.OriginJail, Start: t0.Add(time.Duration(last) * time.Second),
			End: t0.Add(time.Hour), Strikes: strikes, Reason: "auth_failure",
			FirstEvent: t0.Add(time.Duration(first) * time.Second), LastEvent: t0.Add(time.Duration(last) * time.Second)}
	}
	for _, c := range []struct {
		name    string
		strikes []ban.Strike
		bans    []*ban.Ban
		limit   int
		inBatch []bool     // per ban: evidence from the batch
		want    [][]string // per ban
	}{
		{
			name:    "first strike",
			strikes: []ban.Strike{strike(other, "postfix", 1, 1), strike(a, "postfix", 2, 1)},
			bans:    []*ban.Ban{jailBan("203.0.113.7/32", "postfix", 2, 2, 1)},
			limit:   10, inBatch: []bool{true},
			want: [][]string{{"203.0.113.7 in postfix at 2 weighing 1"}},
		},
		{
			name: "newest kept, oldest first, equal times in batch order",
			strikes: []ban.Strike{strike(a, "postfix", 3, 1), strike(a, "postfix", 1, 1), strike(a, "dovecot", 2, 1),
				strike(a, "postfix", 3, 2), strike(other, "postfix", 3, 1), strike(a, "postfix", 2, 1)},
			bans:  []*ban.Ban{jailBan("203.0.113.7/32", "postfix", 1, 3, 5)},
			limit: 3, inBatch: []bool{true},
			want: [][]string{{"203.0.113.7 in postfix at 2 weighing 1", "203.0.113.7 in postfix at 3 weighing 1", "203.0.113.7 in postfix at 3 weighing 2"}},
		},
		{
			name:    "two jails, IPv6, a heavy strike",
			strikes: []ban.Strike{strike(b6, "postfix", 1, 5), strike(b6, "dovecot", 1, 1), strike(b6, "dovecot", 2, 1)},
			bans:    []*ban.Ban{jailBan("2001:db8::7/128", "postfix", 1, 1, 5), jailBan("2001:db8::7/128", "dovecot", 1, 2, 2)},
			limit:   10, inBatch: []bool{true, true},
			want: [][]string{{"2001:db8::7 in postfix at 1 weighing 5"},
				{"2001:db8::7 in dovecot at 1 weighing 1", "2001:db8::7 in dovecot at 2 weighing 1"}},
		},
		{
			name:    "a strike outside the window is not counted",
			strikes: []ban.Strike{strike(a, "postfix", 1, 1), strike(a, "postfix", 5, 1), strike(a, "postfix", 6, 1)},
			bans:    []*ban.Ban{jailBan("203.0.113.7/32", "postfix", 5, 6, 2)},
			limit:   10, inBatch: []bool{true},
			want: [][]string{{"203.0.113.7 in postfix at 5 weighing 1", "203.0.113.7 in postfix at 6 weighing 1"}},
		},
		{
			name:    "fewer strikes in the batch than the ban counted: the store is asked",
			strikes: []ban.Strike{strike(a, "postfix", 5, 1)},
			bans:    []*ban.Ban{jailBan("203.0.113.7/32", "postfix", 5, 5, 2)},
			limit:   10, inBatch: []bool{false},
			want: [][]string{{"203.0.113.7 in postfix at 5 weighing 1"}},
		},
		{
			name:    "a subnet's ban: the store is asked",
			strikes: []ban.Strike{strike(netip.MustParseAddr("198.51.100.0"), "postfix", 5, 1)},
			bans:    []*ban.Ban{jailBan("198.51.100.0/24", "postfix", 5, 5, 1)},
			limit:   10, inBatch: []bool{false},
			want: [][]string{{"198.51.100.0 in postfix at 5 weighing 1"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefixes := make([]netip.Prefix, len(c.bans))
			for i, bn := range c.bans {
				prefixes[i] = bn.Prefix
			}
			own := batchStrikes(Batch{Strikes: c.strikes, Bans: c.bans}, prefixes)
			for i, want := range c.inBatch {
				if got := own != nil && own[i] != nil; got != want {
					t.Errorf("ban %d: evidence from the batch = %v, want %v", i, got, want)
				}
			}
			clone := func() []*ban.Ban {
				out := make([]*ban.Ban, len(c.bans))
				for i, bn := range c.bans {
					cp := *bn
					out[i] = &cp
				}
				return out
			}
			limits := map[string]int{"postfix": c.limit, "dovecot": c.limit}
			together, apart := clone(), clone()
			commit(t, openTest(t, ""), Batch{Strikes: c.strikes, Bans: together, EvidenceLimit: limits})
			s := openTest(t, "")
			commit(t, s, Batch{Strikes: c.strikes})
			commit(t, s, Batch{Bans: apart, EvidenceLimit: limits})
			for i := range c.bans {
				if !slices.Equal(together[i].Evidence, c.want[i]) {
					t.Errorf("ban %d, strikes in its batch: evidence %q,\nwant %q", i, together[i].Evidence, c.want[i])
				}
				if !slices.Equal(apart[i].Evidence, c.want[i]) {
					t.Errorf("ban %d, strikes committed before: evidence %q,\nwant %q", i, apart[i].Evidence, c.want[i])
				}
			}
		})
	}
}
