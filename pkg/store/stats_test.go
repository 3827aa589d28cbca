package store

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
)

// h0 is the start of an hour: the hours tests count from it.
var h0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// hc is a HourCount of the hour h0 + h hours.
func hc(h int, key string, n int) HourCount {
	return HourCount{Hour: h0.Add(time.Duration(h) * time.Hour), Key: key, N: n}
}

// strike is a strike of kind at t.
func strike(kind event.Kind, t time.Time) ban.Strike {
	return ban.Strike{Jail: "smtp", Addr: netip.MustParseAddr("192.0.2.1"), Time: t, Kind: kind, Weight: 1, Line: "l"}
}

func wantHours(t *testing.T, what string, got []HourCount, err error, want []HourCount) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// TestBanAndEventHours counts bans however they are stored (a jail's, a
// replacing one, a manual one, another node's) and strikes over several
// commits, per hour; the counts stay when the bans and strikes are pruned
// and do not count a failed commit.
func TestBanAndEventHours(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	manual := mkBan("198.51.100.0/24", "manual", h0.Add(2*time.Hour+time.Minute), time.Hour)
	manual.Origin = ban.OriginManual
	commit(t, s, Batch{
		Bans: []*ban.Ban{
			mkBan("192.0.2.1", "smtp", h0.Add(5*time.Minute), 10*time.Hour),
			mkBan("192.0.2.2", "smtp", h0.Add(time.Hour-1), 10*time.Hour), // the hour's last nanosecond
			mkBan("192.0.2.1", "imap", h0.Add(30*time.Minute), 10*time.Hour),
			mkBan("192.0.2.3", "smtp", h0.Add(time.Hour), 10*time.Hour), // the next hour's first
			manual,
		},
		Strikes: []ban.Strike{
			strike(event.AuthFailure, h0.Add(time.Minute)),
			strike(event.Pregreet, h0.Add(2*time.Minute)),
			strike(event.AuthFailure, h0.Add(3*time.Minute)),
			strike(event.AuthFailure, h0.Add(61*time.Minute)),
			strike(event.AuthFailure, h0.Add(59*time.Minute)), // out of order: back to hour 0
			strike(event.AuthFailure, h0.Add(62*time.Minute)),
		},
	})
	// A ban replacing an active one counts: it began then.
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.3", "smtp", h0.Add(70*time.Minute), 10*time.Hour)}})
	remote := mkBan("203.0.113.9", "smtp", h0.Add(90*time.Minute), 10*time.Hour)
	remote.Node = "mx2"
	if _, err := s.ApplyRemote(ctx, []Remote{{Ban: remote}}, 7, h0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	remoteStrike := strike(event.BadHELO, h0.Add(2*time.Hour))
	remoteStrike.Node = "mx2"
	commit(t, s, Batch{Strikes: []ban.Strike{strike(event.AuthFailure, h0.Add(10*time.Minute)), remoteStrike}})

	bans := []HourCount{hc(0, "imap", 1), hc(0, "smtp", 2), hc(1, "smtp", 3), hc(2, "manual", 1)}
	events := []HourCount{hc(0, "auth_failure", 4), hc(0, "pregreet", 1), hc(1, "auth_failure", 2), hc(2, "bad_helo", 1)}
	check := func(when string) {
		t.Helper()
		got, err := s.BanHours(ctx, time.Time{})
		wantHours(t, when+": BanHours(all)", got, err, bans)
		got, err = s.BanHours(ctx, h0.Add(time.Hour+59*time.Minute)) // from its hour
		wantHours(t, when+": BanHours(in hour 1)", got, err, bans[2:])
		got, err = s.BanHours(ctx, h0.Add(3*time.Hour))
		wantHours(t, when+": BanHours(after)", got, err, nil)
		got, err = s.EventHours(ctx, time.Time{})
		wantHours(t, when+": EventHours(all)", got, err, events)
		got, err = s.EventHours(ctx, h0.Add(time.Hour))
		wantHours(t, when+": EventHours(from hour 1)", got, err, events[2:])
	}
	check("stored")

	// A commit that fails inside its transaction counts nothing.
	bad := mkBan("192.0.2.99", "smtp", h0, time.Hour)
	bad.Ended = "bogus"
	if err := s.Commit(ctx, Batch{Strikes: []ban.Strike{strike(event.AuthFailure, h0)}, Bans: []*ban.Ban{mkBan("192.0.2.98", "smtp", h0, time.Hour), bad}}); err == nil {
		t.Fatal("Commit of a bad ban: no error")
	}
	check("after a failed commit")

	// Everything pruned: the counts stay.
	if _, err := s.Expire(ctx, h0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(ctx, h0.Add(24*time.Hour), h0.Add(24*time.Hour)); err != nil || n != 7+8 {
		t.Fatalf("Prune: %d, %v; want 7 bans and 8 strikes", n, err)
	}
	check("pruned")
}

// TestMigrateHoursFromV3 opens a version 3 database holding bans and
// strikes: the migration counts them per hour, and the counts go on from
// there.
func TestMigrateHoursFromV3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:3] {
		if _, err := db.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		addr  string
		jail  string
		start time.Duration // after h0
		ended string
	}{
		{"192.0.2.1", "smtp", 0, "expired"},
		{"192.0.2.2", "smtp", 59 * time.Minute, "replaced"},
		{"192.0.2.2", "smtp", 65 * time.Minute, ""},
		{"192.0.2.3", "imap", 3*time.Hour + time.Second, "unbanned"},
		{"2001:db8::1", "smtp", 3 * time.Hour, ""},
	} {
		a := netip.MustParseAddr(b.addr)
		start := toNS(h0.Add(b.start))
		if _, err := db.Exec(`INSERT INTO bans (addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns, ended)
VALUES (?, ?, ?, 'jail', ?, ?, 5, 'auth_failure', ?, ?, ?)`, addrKey(a), a.BitLen(), b.jail, start, start+int64(time.Hour), start, start, b.ended); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range []string{"auth_failure", "auth_failure", "pregreet", "auth_failure", "rejected"} {
		at := toNS(h0.Add(time.Duration(i) * 40 * time.Minute)) // hours 0, 0, 1, 2, 2
		if _, err := db.Exec(`INSERT INTO strikes (jail, addr, time_ns, kind, weight, line) VALUES ('smtp', ?, ?, ?, 1, 'l')`,
			addrKey(netip.MustParseAddr("192.0.2.1")), at, k); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openTest(t, path)
	got, err := s.BanHours(ctx, time.Time{})
	wantHours(t, "BanHours after the migration", got, err, []HourCount{hc(0, "smtp", 2), hc(1, "smtp", 1), hc(3, "imap", 1), hc(3, "smtp", 1)})
	got, err = s.EventHours(ctx, time.Time{})
	wantHours(t, "EventHours after the migration", got, err, []HourCount{hc(0, "auth_failure", 2), hc(1, "pregreet", 1), hc(2, "auth_failure", 1), hc(2, "rejected", 1)})

	commit(t, s, Batch{
		Bans:    []*ban.Ban{mkBan("192.0.2.9", "smtp", h0.Add(time.Minute), time.Hour), mkBan("192.0.2.9", "imap", h0.Add(5*time.Hour), time.Hour)},
		Strikes: []ban.Strike{strike(event.AuthFailure, h0.Add(time.Minute)), strike(event.AuthFailure, h0.Add(5*time.Hour))},
	})
	got, err = s.BanHours(ctx, time.Time{})
	wantHours(t, "BanHours after a commit", got, err, []HourCount{hc(0, "smtp", 3), hc(1, "smtp", 1), hc(3, "imap", 1), hc(3, "smtp", 1), hc(5, "imap", 1)})
	got, err = s.EventHours(ctx, time.Time{})
	wantHours(t, "EventHours after a commit", got, err, []HourCount{hc(0, "auth_failure", 3), hc(1, "pregreet", 1), hc(2, "auth_failure", 1), hc(2, "rejected", 1), hc(5, "auth_failure", 1)})
}

// TestTop ranks addresses and prefixes as banned, their /24s and /64s,
// jails and fingerprints, largest first and ties in key order, over the
// bans begun since a time.
func TestTop(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	bans := []struct{ prefix, jail, reason string }{
		{"192.0.2.7", "smtp", "auth_failure"},
		{"192.0.2.7", "smtp", "auth_failure"}, // replaces the one before
		{"192.0.2.7", "imap", "instant helo=ylmf-pc"},
		{"192.0.2.8", "smtp", "fingerprint helo=x learned from 5 addresses"},
		{"192.0.2.0/28", "manual", "scanner"},
		{"198.51.100.9", "smtp", "fingerprint helo=x"},
		{"198.51.100.9", "smtp", "fingerprint helo=x (repeat offender: ban 3)"},
		{"203.0.0.0/16", "manual", "network"}, // counts under 203.0.0.0/24
		{"203.0.0.0/16", "manual", "network"},
		{"2001:db8:1:2::5", "smtp", "instant pregreet"},
		{"2001:db8:1:2::5", "smtp", "instant pregreet (repeat offender: ban 2)"},
		{"2001:db8:1:2::6", "imap", "auth_failure"},
		{"2001:db8:9::/48", "manual", "x"},                 // counts under 2001:db8:9::/64
		{"::ffff:192.0.2.7", "smtp", "instant user=admin"}, // IPv6, not 192.0.2.7
		{"10.0.0.1", "smtp", "instantly,fingerprinted"},    // not a fingerprint
	}
	// Before the period: counted only with the zero since.
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.7", "smtp", h0.Add(-time.Nanosecond), time.Minute)}})
	for i, b := range bans {
		bn := mkBan(b.prefix, b.jail, h0.Add(time.Duration(i)*time.Minute), time.Hour)
		bn.Reason = b.reason
		commit(t, s, Batch{Bans: []*ban.Ban{bn}})
	}
	kc := func(pairs ...any) []KeyCount {
		out := []KeyCount{}
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, KeyCount{Key: pairs[i].(string), N: pairs[i+1].(int)})
		}
		return out
	}
	all := Top{
		Since: h0,
		Bans:  15,
		Addrs: kc("192.0.2.7", 3, "198.51.100.9", 2, "203.0.0.0/16", 2, "2001:db8:1:2::5", 2,
			"10.0.0.1", 1, "192.0.2.0/28", 1, "192.0.2.8", 1, "::ffff:192.0.2.7", 1, "2001:db8:1:2::6", 1, "2001:db8:9::/48", 1),
		Nets24:       kc("192.0.2.0/24", 5, "198.51.100.0/24", 2, "203.0.0.0/24", 2, "10.0.0.0/24", 1),
		Nets64:       kc("2001:db8:1:2::/64", 3, "::/64", 1, "2001:db8:9::/64", 1),
		Jails:        kc("smtp", 9, "manual", 4, "imap", 2),
		Fingerprints: kc("fingerprint helo=x", 3, "instant pregreet", 2, "instant helo=ylmf-pc", 1, "instant user=admin", 1),
	}
	for _, c := range []struct {
		name  string
		since time.Time
		n     int
		want  Top
	}{
		{"all lists whole", h0, 10, all},
		{"three of each", h0, 3, Top{
			Since: h0, Bans: 15,
			Addrs:        all.Addrs[:3], // 2001:db8:1:2::5 ties and comes later
			Nets24:       all.Nets24[:3],
			Nets64:       all.Nets64,
			Jails:        all.Jails,
			Fingerprints: all.Fingerprints[:3],
		}},
		{"one", h0, 1, Top{
			Since: h0, Bans: 15,
			Addrs: all.Addrs[:1], Nets24: all.Nets24[:1], Nets64: all.Nets64[:1], Jails: all.Jails[:1], Fingerprints: all.Fingerprints[:1],
		}},
		{"since the zero time", time.Time{}, 2, Top{
			Bans:         16,
			Addrs:        kc("192.0.2.7", 4, "198.51.100.9", 2),
			Nets24:       kc("192.0.2.0/24", 6, "198.51.100.0/24", 2),
			Nets64:       all.Nets64[:2],
			Jails:        kc("smtp", 10, "manual", 4),
			Fingerprints: all.Fingerprints[:2],
		}},
		{"nothing since", h0.Add(time.Hour), 10, Top{
			Since: h0.Add(time.Hour), Addrs: kc(), Nets24: kc(), Nets64: kc(), Jails: kc(), Fingerprints: kc(),
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Top(ctx, c.since, c.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got\n%+v\nwant\n%+v", *got, c.want)
			}
		})
	}
	if _, err := s.Top(ctx, h0, 0); err == nil || !strings.HasPrefix(err.Error(), "store: top: ") {
		t.Errorf("Top(n = 0): %v, want a store: top: error", err)
	}
}

// historyFixture stores bans of two jails in and around 192.0.2.0/24 and
// 2001:db8::/32, several begun at the same time, and ends some of them in
// every way. It returns them all, newest first.
func historyFixture(t *testing.T, s *Store) []ban.Ban {
	t.Helper()
	ctx := context.Background()
	prefixes := []string{"192.0.2.1", "192.0.2.2", "192.0.2.0/28", "192.0.0.0/16", "198.51.100.7", "2001:db8::1", "2001:db8::/48", "::/0"}
	jails := []string{"smtp", "imap"}
	for i := range 60 {
		// Groups of three bans begin at the same nanosecond: the cursor
		// must break the ties by ID.
		start := h0.Add(time.Duration(i/3) * time.Minute)
		b := mkBan(prefixes[i%len(prefixes)], jails[i%5%2], start, time.Duration(1+i%4)*time.Hour, "evidence")
		commit(t, s, Batch{Bans: []*ban.Ban{b}}) // ends an active ban of the same prefix and jail as replaced
		if i%7 == 0 {
			if _, err := s.Unban(ctx, b.Prefix, b.Jail, start, "uid 0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Expire(ctx, h0.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	all, err := s.History(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, b := range all {
		kinds[b.Ended]++
	}
	for _, k := range []string{ban.EndActive, ban.EndExpired, ban.EndUnbanned, ban.EndReplaced} {
		if kinds[k] == 0 {
			t.Fatalf("no ban ended %q in the fixture: %v", k, kinds)
		}
	}
	return all
}

// TestHistoryPage walks the history page by page with each filter: every
// ban that matches comes exactly once, newest first, without its evidence.
func TestHistoryPage(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	all := historyFixture(t, s)
	p24 := netip.MustParsePrefix("192.0.2.0/24")
	p64 := netip.MustParsePrefix("2001:db8::/64")
	for _, c := range []struct {
		name  string
		q     PageQuery
		match func(b ban.Ban) bool
	}{
		{"all", PageQuery{}, func(ban.Ban) bool { return true }},
		{"jail", PageQuery{Jail: "imap"}, func(b ban.Ban) bool { return b.Jail == "imap" }},
		{"active", PageQuery{Ended: "active"}, func(b ban.Ban) bool { return b.Ended == ban.EndActive }},
		{"expired", PageQuery{Ended: ban.EndExpired}, func(b ban.Ban) bool { return b.Ended == ban.EndExpired }},
		{"unbanned in a jail", PageQuery{Ended: ban.EndUnbanned, Jail: "smtp"}, func(b ban.Ban) bool { return b.Ended == ban.EndUnbanned && b.Jail == "smtp" }},
		{"replaced", PageQuery{Ended: ban.EndReplaced}, func(b ban.Ban) bool { return b.Ended == ban.EndReplaced }},
		{"prefix", PageQuery{Prefix: p24}, func(b ban.Ban) bool { return b.Prefix.Overlaps(p24) }},
		{"address", PageQuery{Prefix: netip.MustParsePrefix("192.0.2.2/32")}, func(b ban.Ban) bool { return b.Prefix.Contains(netip.MustParseAddr("192.0.2.2")) }},
		{"ipv6 prefix, jail and ended", PageQuery{Prefix: p64, Jail: "smtp", Ended: ban.EndReplaced},
			func(b ban.Ban) bool { return b.Prefix.Overlaps(p64) && b.Jail == "smtp" && b.Ended == ban.EndReplaced }},
		{"nothing", PageQuery{Jail: "nope"}, func(ban.Ban) bool { return false }},
	} {
		for _, limit := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%s/limit=%d", c.name, limit), func(t *testing.T) {
				var want []int64
				for _, b := range all {
					if c.match(b) {
						want = append(want, b.ID)
					}
				}
				var got []int64
				q := c.q
				q.Limit = limit
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatalf("more than %d pages", pages)
					}
					page, err := s.HistoryPage(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("a page of %d bans, limit %d", len(page), limit)
					}
					for _, b := range page {
						if b.Evidence != nil {
							t.Fatalf("ban %d with evidence", b.ID)
						}
						got = append(got, b.ID)
					}
					if len(page) < limit {
						break
					}
					last := page[len(page)-1]
					q.Before = Cursor{Start: last.Start, ID: last.ID}
				}
				if !slices.Equal(got, want) {
					t.Errorf("got  %v\nwant %v", got, want)
				}
			})
		}
	}

	// The pages carry the bans as stored.
	page, err := s.HistoryPage(ctx, PageQuery{Limit: 1})
	if err != nil || len(page) != 1 {
		t.Fatalf("%v, %v", page, err)
	}
	if want := all[0]; page[0].ID != want.ID || page[0].Prefix != want.Prefix || !page[0].Start.Equal(want.Start) ||
		page[0].Ended != want.Ended || page[0].Jail != want.Jail || page[0].Reason != want.Reason {
		t.Errorf("page %+v, want %+v", page[0], want)
	}

	for _, q := range []PageQuery{{}, {Limit: -1}, {Limit: 10, Ended: "ended"}, {Limit: 10, Ended: "Active"}} {
		if _, err := s.HistoryPage(ctx, q); err == nil || !strings.HasPrefix(err.Error(), "store: history page: ") {
			t.Errorf("HistoryPage(%+v): %v, want a store: history page: error", q, err)
		}
	}
}

// TestHistoryPagePlan checks that a page without a prefix walks an index
// in the order of the pages, from the cursor: no scan of the table, no
// sort.
func TestHistoryPagePlan(t *testing.T) {
	s := openTest(t, "")
	historyFixture(t, s)
	if _, err := s.w.Exec(`ANALYZE`); err != nil { // statistics, as PRAGMA optimize makes them
		t.Fatal(err)
	}
	before := Cursor{Start: h0, ID: 5}
	for _, c := range []struct {
		q     PageQuery
		index string
	}{
		{PageQuery{}, "SCAN bans USING INDEX bans_start"},
		{PageQuery{Before: before}, "SEARCH bans USING INDEX bans_start (start_ns<?)"},
		{PageQuery{Ended: "active", Before: before}, "SEARCH bans USING INDEX bans_active_start (start_ns<?)"},
		{PageQuery{Ended: ban.EndExpired}, "SEARCH bans USING INDEX bans_ended_start (ended=?)"},
		{PageQuery{Ended: ban.EndUnbanned, Before: before}, "SEARCH bans USING INDEX bans_ended_start (ended=? AND start_ns<?)"},
		{PageQuery{Jail: "smtp"}, "SEARCH bans USING INDEX bans_jail_start (jail=?)"},
		{PageQuery{Jail: "smtp", Ended: "active", Before: before}, "SEARCH bans USING INDEX bans_active_start (start_ns<?)"},
		// A prefix alone: the address index covers the search and the
		// sort; only the page's rows are read from the table (checked
		// below, line by line, as the plan has a line per covering prefix).
		{PageQuery{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Before: before}, "covering"},
	} {
		c.q.Limit = 50
		text, args, err := pageSQL(c.q)
		if err != nil {
			t.Fatal(err)
		}
		plan := queryPlan(t, s, text, args)
		if c.index == "covering" {
			covered := 0
			for _, l := range plan {
				switch {
				case strings.HasPrefix(l, "SEARCH bans USING COVERING INDEX bans_addr "):
					covered++
				case strings.Contains(l, " bans ") && l != "SEARCH bans USING INTEGER PRIMARY KEY (rowid=?)":
					t.Errorf("%+v: plan line %q: bans read other than by the address index or for the page's rows", c.q, l)
				}
			}
			if covered == 0 {
				t.Errorf("%+v: plan does not search the address index:\n%s", c.q, strings.Join(plan, "\n"))
			}
			continue
		}
		if !slices.Equal(plan, []string{c.index}) {
			t.Errorf("%+v: plan\n%s\nwant %s", c.q, strings.Join(plan, "\n"), c.index)
		}
	}
}

func TestBanByID(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	a := mkBan("192.0.2.1", "smtp", h0, time.Hour, "line 1", "line 2")
	b := mkBan("2001:db8::/64", "imap", h0.Add(time.Minute), time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{a, b}})
	if _, err := s.Unban(ctx, b.Prefix, "", h0.Add(2*time.Minute), "uid 0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id       int64
		found    bool
		prefix   string
		ended    string
		evidence []string
	}{
		{a.ID, true, "192.0.2.1/32", ban.EndActive, []string{"line 1", "line 2"}},
		{b.ID, true, "2001:db8::/64", ban.EndUnbanned, nil},
		{b.ID + 1, false, "", "", nil},
		{0, false, "", "", nil},
	} {
		got, ok, err := s.BanByID(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.found {
			t.Errorf("ban %d: found %v, want %v", c.id, ok, c.found)
			continue
		}
		if !ok {
			continue
		}
		if got.ID != c.id || got.Prefix.String() != c.prefix || got.Ended != c.ended || !slices.Equal(got.Evidence, c.evidence) {
			t.Errorf("ban %d: %+v", c.id, got)
		}
	}
}

// topBans is the size of BenchmarkTop's and BenchmarkHistoryPage's store.
var topBans = flag.Int("top.bans", 100_000, "bans in the store of BenchmarkTop and BenchmarkHistoryPage")

// statsStore makes a store of *topBans bans over 30 days in four jails, as
// an attack wave leaves it: most of single IPv4 addresses from all over,
// a fifth of them from 200 busy /24s that come back, some IPv6 addresses
// from a few /64s, a few prefixes; a fifth made by fingerprints. The bans
// older than a week have expired. It returns the store and the end of the
// 30 days.
func statsStore(b *testing.B) (*Store, time.Time) {
	b.Helper()
	return fillStatsStore(b, openTest(b, filepath.Join(b.TempDir(), "stats.db")))
}

// fillStatsStore fills s as statsStore describes.
func fillStatsStore(b *testing.B, s *Store) (*Store, time.Time) {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	total := *topBans
	span := 30 * 24 * time.Hour
	reasons := []string{"auth_failure", "auth_failure,bad_helo", "auth_failure", "rejected",
		"instant helo=ylmf-pc", "fingerprint helo=x learned from 12 addresses", "fingerprint helo=x", "instant pregreet",
		"auth_failure", "auth_failure"}
	const per = 10_000
	for i := 0; i < total; i += per {
		batch := Batch{Bans: make([]*ban.Ban, 0, per)}
		for j := i; j < min(i+per, total); j++ {
			var p netip.Prefix
			switch r := rng.Intn(100); {
			case r < 70:
				p = ban.PrefixOf(netip.AddrFrom4([4]byte{byte(1 + rng.Intn(223)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))}))
			case r < 90:
				p = ban.PrefixOf(netip.AddrFrom4([4]byte{185, 220, byte(rng.Intn(200)), byte(rng.Intn(256))}))
			case r < 98:
				a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.Intn(10))}
				a[15] = byte(rng.Intn(256))
				p = ban.PrefixOf(netip.AddrFrom16(a))
			default:
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + rng.Intn(223)), byte(rng.Intn(256)), byte(rng.Intn(256)), 0}), 24)
			}
			start := h0.Add(span / time.Duration(total) * time.Duration(j))
			batch.Bans = append(batch.Bans, &ban.Ban{
				Prefix: p, Jail: benchJails[rng.Intn(len(benchJails))], Origin: ban.OriginJail,
				Start: start, End: start.Add(7 * 24 * time.Hour), Strikes: 5, Reason: reasons[rng.Intn(len(reasons))],
				FirstEvent: start.Add(-time.Minute), LastEvent: start, Evidence: []string{"l"},
			})
		}
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	end := h0.Add(span)
	if _, err := s.Expire(ctx, end); err != nil {
		b.Fatal(err)
	}
	return s, end
}

// BenchmarkTop ranks the last day's and the whole month's bans of a store
// of -top.bans bans (100,000 by default) over 30 days.
//
//	go test -run '^$' -bench Top -top.bans 1000000 -benchtime 3x ./pkg/store
func BenchmarkTop(b *testing.B) {
	s, end := statsStore(b)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		since time.Time
	}{{"day", end.Add(-24 * time.Hour)}, {"month", time.Time{}}} {
		b.Run(c.name, func(b *testing.B) {
			var top *Top
			for b.Loop() {
				var err error
				if top, err = s.Top(ctx, c.since, 10); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(top.Bans), "bans")
		})
	}
}

// BenchmarkHistoryPage reads the first and a later page of 50 of the
// history of a store of -top.bans bans, with each filter.
func BenchmarkHistoryPage(b *testing.B) {
	s, end := statsStore(b)
	ctx := context.Background()
	mid := Cursor{Start: end.Add(-15 * 24 * time.Hour), ID: int64(*topBans / 2)}
	for _, c := range []struct {
		name string
		q    PageQuery
	}{
		{"all", PageQuery{}},
		{"all/middle", PageQuery{Before: mid}},
		{"jail/middle", PageQuery{Jail: "dovecot", Before: mid}},
		{"active", PageQuery{Ended: "active"}},
		{"active/middle", PageQuery{Ended: "active", Before: mid}}, // none: the scan reads on to the first ban
		{"expired", PageQuery{Ended: ban.EndExpired}},
		{"prefix24", PageQuery{Prefix: netip.MustParsePrefix("185.220.7.0/24")}},
		{"prefix16/middle", PageQuery{Prefix: netip.MustParsePrefix("185.220.0.0/16"), Before: mid}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c.q.Limit = 50
			n := 0
			for b.Loop() {
				page, err := s.HistoryPage(ctx, c.q)
				if err != nil {
					b.Fatal(err)
				}
				n = len(page)
			}
			b.ReportMetric(float64(n), "bans")
		})
	}
}
