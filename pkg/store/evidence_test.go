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
