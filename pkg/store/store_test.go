package store

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/source"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "banwatch.db")
	}
	s, err := Open(context.Background(), path, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t testing.TB, s *Store, b Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// mkBan returns an active jail ban of prefix p in jail from start for d.
func mkBan(p string, jail string, start time.Time, d time.Duration, evidence ...string) *ban.Ban {
	pfx, err := netip.ParsePrefix(p)
	if err != nil {
		a := netip.MustParseAddr(p)
		pfx = ban.PrefixOf(a)
	}
	return &ban.Ban{
		Prefix: pfx, Jail: jail, Origin: ban.OriginJail,
		Start: start, End: start.Add(d), Strikes: 5, Reason: "auth_failure",
		FirstEvent: start.Add(-time.Minute), LastEvent: start, Evidence: evidence,
	}
}

func ids(bans []ban.Ban) []int64 {
	out := make([]int64, 0, len(bans))
	for _, b := range bans {
		out = append(out, b.ID)
	}
	return out
}

func sorted(x []int64) []int64 { slices.Sort(x); return x }

func TestOpenCreatesModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "banwatch")
	path := filepath.Join(dir, "banwatch.db")
	s := openTest(t, path)
	commit(t, s, Batch{Positions: []source.Position{{Path: "/var/log/mail.log", Offset: 1}}})
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}, {path + "-wal", 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	var mode string
	if err := s.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v", mode, err)
	}
	var fk, sync int
	if err := s.w.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys %d, %v", fk, err)
	}
	if err := s.w.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 1 {
		t.Errorf("synchronous %d, %v; want 1 (NORMAL)", sync, err)
	}
	if _, err := s.r.Exec(`DELETE FROM positions`); err == nil {
		t.Error("read pool can write")
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(context.Background(), p, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", p)
		}
	}
}

func TestMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d, %d migrations", SchemaVersion, len(migrations))
	}
	ctx := context.Background()

	t.Run("empty file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "empty.db")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openTest(t, path)
		var v int
		if err := s.r.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != SchemaVersion {
			t.Fatalf("user_version %d, %v", v, err)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode())
		}
	})

	t.Run("future version refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "future.db")
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, SchemaVersion+1)); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := Open(ctx, path, testLogger())
		if err == nil {
			s.Close()
			t.Fatal("opened a database of a newer schema")
		}
		if !strings.Contains(err.Error(), "newer") || !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("error %q", err)
		}
	})

	// A version 1 database (before journal cursors) keeps its positions
	// and gains the cursor column; a cursor then round-trips.
	t.Run("from version 1", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "v1.db")
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(migrations[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`PRAGMA user_version = 1; INSERT INTO positions VALUES ('/var/log/mail.log', 42, 1000, 7)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s := openTest(t, path)
		pos, err := s.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := source.Position{Path: "/var/log/mail.log", Inode: 42, Offset: 1000, Fingerprint: 7}
		if pos[want.Path] != want {
			t.Errorf("after the migration: %+v, want %+v", pos[want.Path], want)
		}
		j := source.Position{Path: source.JournalPrefix + "_SYSTEMD_UNIT=postfix@-.service", Cursor: "s=1;i=2;b=3"}
		if err := s.Commit(ctx, Batch{Positions: []source.Position{j}}); err != nil {
			t.Fatal(err)
		}
		if pos, err = s.Positions(ctx); err != nil || pos[j.Path] != j {
			t.Errorf("journal position %+v (%v), want %+v", pos[j.Path], err, j)
		}
	})

	t.Run("reopen is a no-op", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "b.db")
		s := openTest(t, path)
		s.Close()
		s = openTest(t, path)
		var names string
		err := s.r.QueryRow(`SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%' ORDER BY name)`).Scan(&names)
		if want := "ban_hours bans cluster_state event_hours evidence outbox positions sqlite_sequence strikes"; err != nil || names != want {
			t.Errorf("tables %q (%v), want %q", names, err, want)
		}
	})
}

func TestPositions(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	commit(t, s, Batch{Positions: []source.Position{
		{Path: "/var/log/mail.log", Inode: 12, Offset: 100, Fingerprint: 1<<63 | 5},
		{Path: "/var/log/auth.log", Inode: 1<<64 - 1, Offset: 7, Fingerprint: 0},
	}})
	commit(t, s, Batch{Positions: []source.Position{{Path: "/var/log/mail.log", Inode: 13, Offset: 0, Fingerprint: 9}}})
	got, err := s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]source.Position{
		"/var/log/mail.log": {Path: "/var/log/mail.log", Inode: 13, Offset: 0, Fingerprint: 9},
		"/var/log/auth.log": {Path: "/var/log/auth.log", Inode: 1<<64 - 1, Offset: 7, Fingerprint: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %+v, want %+v", k, got[k], w)
		}
	}
}

func TestStrikesSince(t *testing.T) {
	s := openTest(t, "")
	ctx := context.Background()
	var in []ban.Strike
	for i := range 5 {
		in = append(in, ban.Strike{
			Jail: "smtp", Addr: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)),
			Time: t0.Add(time.Duration(4-i) * time.Second), // newest first in the batch
			Kind: event.AuthFailure, Weight: i + 1, Line: fmt.Sprintf("line %d", i),
		})
	}
	in = append(in, ban.Strike{Jail: "imap", Addr: netip.MustParseAddr("2001:db8::1"), Time: t0.Add(10 * time.Second), Kind: event.BadHELO, Weight: 1, Line: "v6"})
	commit(t, s, Batch{Strikes: in})

	for _, c := range []struct {
		name  string
		since time.Time
		want  []string // lines, oldest first
	}{
		{"zero", time.Time{}, []string{"line 4", "line 3", "line 2", "line 1", "line 0", "v6"}},
		{"exact boundary included", t0.Add(3 * time.Second), []string{"line 1", "line 0", "v6"}},
		{"after all v4", t0.Add(5 * time.Second), []string{"v6"}},
		{"future", t0.Add(time.Hour), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Strikes(ctx, c.since)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, k := range got {
				lines = append(lines, k.Line)
			}
			if !slices.Equal(lines, c.want) {
				t.Fatalf("got %q, want %q", lines, c.want)
			}
		})
	}
	got, _ := s.Strikes(ctx, time.Time{})
	for _, k := range got {
		var w ban.Strike
		for _, x := range in {
			if x.Line == k.Line {
				w = x
			}
		}
		if k.Jail != w.Jail || k.Addr != w.Addr || !k.Time.Equal(w.Time) || k.Kind != w.Kind || k.Weight != w.Weight {
			t.Errorf("got %+v, want %+v", k, w)
		}
		if k.Time.Location() != time.UTC {
			t.Errorf("time not UTC: %v", k.Time)
		}
	}
}

func TestBanLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	a := mkBan("192.0.2.1", "smtp", t0, time.Hour, "l1", "l2")
	b := mkBan("192.0.2.2", "smtp", t0, 2*time.Hour)
	c := mkBan("192.0.2.3", "smtp", t0, 3*time.Hour)
	c2 := mkBan("192.0.2.3", "imap", t0, 3*time.Hour) // same prefix, other jail
	commit(t, s, Batch{Bans: []*ban.Ban{a, b, c, c2}})
	for _, x := range []*ban.Ban{a, b, c, c2} {
		if x.ID == 0 {
			t.Fatalf("ID not set: %+v", x)
		}
	}

	get := func(id int64) ban.Ban {
		t.Helper()
		all, err := s.History(ctx, Query{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all {
			if x.ID == id {
				return x
			}
		}
		t.Fatalf("ban %d not found", id)
		return ban.Ban{}
	}

	// Expire at a's End.
	n, err := s.Expire(ctx, a.End)
	if err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	if g := get(a.ID); g.Ended != ban.EndExpired || !g.EndedAt.Equal(a.End) || g.EndedBy != "" {
		t.Errorf("a after Expire: %+v", g)
	}
	if n, _ := s.Expire(ctx, a.End); n != 0 {
		t.Errorf("second Expire: %d", n)
	}

	// Unban b.
	now := t0.Add(30 * time.Minute)
	got, err := s.Unban(ctx, b.Prefix, "smtp", now, "uid 0")
	if err != nil || len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("Unban: %+v, %v", got, err)
	}
	if g := got[0]; g.Ended != ban.EndUnbanned || !g.EndedAt.Equal(now) || g.EndedBy != "uid 0" {
		t.Errorf("unbanned: %+v", g)
	}
	if g := get(b.ID); g.Ended != ban.EndUnbanned || !g.EndedAt.Equal(now) || g.EndedBy != "uid 0" {
		t.Errorf("b in history: %+v", g)
	}
	if got, _ := s.Unban(ctx, b.Prefix, "smtp", now, "uid 0"); len(got) != 0 {
		t.Errorf("second Unban: %+v", got)
	}

	// Replace c in smtp; c2 in imap stays.
	c3 := mkBan("192.0.2.3", "smtp", t0.Add(time.Hour), 24*time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{c3}})
	if g := get(c.ID); g.Ended != ban.EndReplaced || !g.EndedAt.Equal(c3.Start) {
		t.Errorf("c after replace: %+v", g)
	}
	if g := get(c2.ID); g.Ended != ban.EndActive {
		t.Errorf("c2 (other jail) after replace: %+v", g)
	}

	// A "replacing" ban after the old one's End: the old one expired.
	d := mkBan("192.0.2.4", "smtp", t0, time.Minute)
	commit(t, s, Batch{Bans: []*ban.Ban{d}})
	d2 := mkBan("192.0.2.4", "smtp", t0.Add(time.Hour), time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{d2}})
	if g := get(d.ID); g.Ended != ban.EndExpired || !g.EndedAt.Equal(d.End) {
		t.Errorf("d after late replace: %+v", g)
	}

	// Two bans of one prefix and jail in one batch: the last one stands.
	e1 := mkBan("2001:db8::/64", "smtp", t0, time.Hour)
	e2 := mkBan("2001:db8::/64", "smtp", t0.Add(time.Second), time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{e1, e2}})
	if g := get(e1.ID); g.Ended != ban.EndReplaced {
		t.Errorf("e1: %+v", g)
	}

	act, err := s.Active(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if w := sorted([]int64{c2.ID, c3.ID, d2.ID, e2.ID}); !slices.Equal(sorted(ids(act)), w) {
		t.Errorf("active %v, want %v", ids(act), w)
	}
}

func TestUnbanScope(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	a1 := mkBan("198.51.100.7", "smtp", t0, time.Hour, "x")
	a2 := mkBan("198.51.100.7", "imap", t0, time.Hour)
	net := mkBan("198.51.100.0/24", "smtp", t0, time.Hour)
	old := mkBan("198.51.100.9", "smtp", t0, time.Minute)
	commit(t, s, Batch{Bans: []*ban.Ban{a1, a2, net, old}})
	now := t0.Add(10 * time.Minute)

	if got, err := s.Unban(ctx, netip.MustParsePrefix("198.51.100.9/32"), "", now, "banctl"); err != nil || len(got) != 0 {
		t.Errorf("unban of a ban past its End: %+v, %v", got, err)
	}
	got, err := s.Unban(ctx, ban.PrefixOf(netip.MustParseAddr("198.51.100.7")), "", now, "banctl")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Jail != "imap" || got[1].Jail != "smtp" {
		t.Fatalf("unban all jails: %+v", got)
	}
	if !slices.Equal(got[1].Evidence, []string{"x"}) {
		t.Errorf("evidence %q", got[1].Evidence)
	}
	act, _ := s.Active(ctx, now)
	if !slices.Equal(ids(act), []int64{net.ID}) {
		t.Errorf("active after unban: %v, want the /24 %d", ids(act), net.ID)
	}
	if _, err := s.Unban(ctx, netip.Prefix{}, "", now, "x"); err == nil {
		t.Error("Unban of the zero prefix: no error")
	}
}

func TestActiveAndCount(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	now := t0.Add(time.Hour)
	live := mkBan("192.0.2.1", "smtp", t0, 2*time.Hour)
	live6 := mkBan("2001:db8::/48", "imap", t0, 2*time.Hour)
	forever := mkBan("192.0.2.9", "smtp", t0, 0)
	forever.End = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	pastEnd := mkBan("192.0.2.2", "smtp", t0, time.Hour) // End == now: not active
	ended := mkBan("192.0.2.3", "smtp", t0, 2*time.Hour)
	ended.Ended, ended.EndedAt, ended.EndedBy = ban.EndUnbanned, t0.Add(time.Minute), "admin"
	commit(t, s, Batch{Bans: []*ban.Ban{live, live6, forever, pastEnd, ended}})

	act, err := s.Active(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if w := sorted([]int64{live.ID, live6.ID, forever.ID}); !slices.Equal(sorted(ids(act)), w) {
		t.Fatalf("active %v, want %v", ids(act), w)
	}
	for _, g := range act {
		var w *ban.Ban
		for _, x := range []*ban.Ban{live, live6, forever} {
			if x.ID == g.ID {
				w = x
			}
		}
		if g.Prefix != w.Prefix || g.Jail != w.Jail || g.Origin != w.Origin || !g.Start.Equal(w.Start) ||
			g.Strikes != w.Strikes || g.Reason != w.Reason || !g.FirstEvent.Equal(w.FirstEvent) ||
			!g.LastEvent.Equal(w.LastEvent) || g.Evidence != nil || g.Ended != "" || !g.EndedAt.IsZero() {
			t.Errorf("got %+v, want %+v", g, *w)
		}
		if w != forever && !g.End.Equal(w.End) {
			t.Errorf("End %v, want %v", g.End, w.End)
		}
		if w == forever && g.End.Year() != 2262 {
			t.Errorf("far End stored as %v, want saturated in 2262", g.End)
		}
	}
	// The same through the index, once most of the table is history.
	var hist []*ban.Ban
	for i := range 20 {
		h := mkBan(fmt.Sprintf("198.51.100.%d", i), "smtp", t0.Add(-48*time.Hour), time.Hour)
		h.Ended, h.EndedAt = ban.EndExpired, h.End
		hist = append(hist, h)
	}
	commit(t, s, Batch{Bans: hist})
	act2, err := s.Active(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(ids(act2)), sorted(ids(act))) {
		t.Errorf("active through the index %v, by scan %v", ids(act2), ids(act))
	}

	cnt, err := s.CountActive(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(cnt) != 2 || cnt["smtp"] != 2 || cnt["imap"] != 1 {
		t.Errorf("CountActive %v", cnt)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	day := 24 * time.Hour
	bans := map[string]*ban.Ban{
		"in1":    mkBan("203.0.113.5", "smtp", t0, day, "e1", "e2", "e3"),
		"in2":    mkBan("203.0.113.200", "imap", t0.Add(time.Minute), day),
		"net24":  mkBan("203.0.113.0/24", "smtp", t0.Add(2*time.Minute), day),
		"net16":  mkBan("203.0.0.0/16", "smtp", t0.Add(3*time.Minute), day),
		"out1":   mkBan("203.0.114.5", "smtp", t0.Add(4*time.Minute), day),
		"out2":   mkBan("203.0.112.255", "smtp", t0.Add(5*time.Minute), day),
		"sib25":  mkBan("203.0.0.0/25", "smtp", t0.Add(6*time.Minute), day),     // same key as net16's mask, other bits
		"v6in":   mkBan("2001:db8:1:2::99", "smtp", t0.Add(7*time.Minute), day), // inside 2001:db8:1:2::/64
		"v6net":  mkBan("2001:db8:1::/48", "smtp", t0.Add(8*time.Minute), day),  // covers the /64
		"v6out":  mkBan("2001:db8:1:3::1", "smtp", t0.Add(9*time.Minute), day),
		"mapped": mkBan("::ffff:203.0.113.5", "smtp", t0.Add(10*time.Minute), day), // IPv6, not the IPv4 address
		"all6":   mkBan("::/0", "smtp", t0.Add(11*time.Minute), day),
	}
	var batch Batch
	names := make([]string, 0, len(bans))
	for n := range bans {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		batch.Bans = append(batch.Bans, bans[n])
	}
	commit(t, s, batch)
	// end one of them: History returns ended bans too
	if _, err := s.Unban(ctx, bans["in2"].Prefix, "", t0.Add(time.Hour), "uid 0"); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name string
		q    Query
		want []string // newest first
	}{
		{"exact address", Query{Prefix: netip.MustParsePrefix("203.0.113.5/32")}, []string{"net16", "net24", "in1"}},
		{"covering /24", Query{Prefix: netip.MustParsePrefix("203.0.113.0/24")}, []string{"net16", "net24", "in2", "in1"}},
		{"unmasked /24", Query{Prefix: netip.MustParsePrefix("203.0.113.77/24")}, []string{"net16", "net24", "in2", "in1"}},
		{"/16", Query{Prefix: netip.MustParsePrefix("203.0.0.0/16")}, []string{"sib25", "out2", "out1", "net16", "net24", "in2", "in1"}},
		{"ipv6 /64", Query{Prefix: netip.MustParsePrefix("2001:db8:1:2::/64")}, []string{"all6", "v6net", "v6in"}},
		{"ipv4-mapped is ipv6", Query{Prefix: netip.MustParsePrefix("::ffff:203.0.113.0/120")}, []string{"all6", "mapped"}},
		{"jail", Query{Jail: "imap"}, []string{"in2"}},
		{"jail and prefix", Query{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Jail: "smtp"}, []string{"net16", "net24", "in1"}},
		{"since", Query{Since: t0.Add(9 * time.Minute)}, []string{"all6", "mapped", "v6out"}},
		{"limit", Query{Limit: 2}, []string{"all6", "mapped"}},
		{"limit with prefix", Query{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Limit: 3}, []string{"net16", "net24", "in2"}},
		{"nothing", Query{Prefix: netip.MustParsePrefix("192.0.2.0/24")}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.History(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, n := range c.want {
				want = append(want, bans[n].ID)
			}
			if !slices.Equal(ids(got), want) {
				var gn []string
				for _, g := range got {
					for n, b := range bans {
						if b.ID == g.ID {
							gn = append(gn, n)
						}
					}
				}
				t.Fatalf("got %q, want %q", gn, c.want)
			}
		})
	}

	got, err := s.History(ctx, Query{Prefix: bans["in1"].Prefix, Jail: "smtp"})
	if err != nil {
		t.Fatal(err)
	}
	in1 := got[len(got)-1]
	if in1.ID != bans["in1"].ID || !slices.Equal(in1.Evidence, []string{"e1", "e2", "e3"}) {
		t.Errorf("evidence of in1: %+v", in1)
	}
	got, _ = s.History(ctx, Query{Jail: "imap"})
	if g := got[0]; g.Ended != ban.EndUnbanned || g.EndedBy != "uid 0" || g.Evidence != nil {
		t.Errorf("ended ban in history: %+v", g)
	}
}

// TestHistoryPlan checks that History by prefix searches the address index
// and never scans the bans table.
func TestHistoryPlan(t *testing.T) {
	s := openTest(t, "")
	for _, q := range []Query{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24")},
		{Prefix: netip.MustParsePrefix("203.0.113.9/32"), Jail: "smtp", Limit: 10},
		{Prefix: netip.MustParsePrefix("2001:db8:ffff:ffff::/64")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Since: t0},
	} {
		text, args := historySQL(q)
		plan := queryPlan(t, s, text, args)
		for _, d := range plan {
			if strings.HasPrefix(d, "SCAN bans") || strings.Contains(d, "bans_jail_start") || strings.Contains(d, "bans_start") {
				t.Errorf("%v: table or index scan in plan:\n%s", q.Prefix, strings.Join(plan, "\n"))
				break
			}
		}
		if !strings.Contains(strings.Join(plan, "\n"), "bans_addr") {
			t.Errorf("%v: address index unused:\n%s", q.Prefix, strings.Join(plan, "\n"))
		}
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	var strikes []ban.Strike
	for i := range 10 {
		strikes = append(strikes, ban.Strike{Jail: "smtp", Addr: netip.MustParseAddr("192.0.2.1"), Time: t0.Add(time.Duration(i) * time.Minute), Kind: event.Rejected, Weight: 1})
	}
	oldEnded := mkBan("192.0.2.1", "smtp", t0, time.Hour, "ev")
	newEnded := mkBan("192.0.2.2", "smtp", t0, 3*time.Hour, "ev")
	activeOld := mkBan("192.0.2.3", "smtp", t0.Add(-48*time.Hour), 100*time.Hour, "ev") // started long ago, still active
	commit(t, s, Batch{Strikes: strikes, Bans: []*ban.Ban{oldEnded, newEnded, activeOld}})
	if n, err := s.Expire(ctx, t0.Add(4*time.Hour)); err != nil || n != 2 {
		t.Fatalf("Expire: %d, %v", n, err)
	}

	n, err := s.Prune(ctx, t0.Add(5*time.Minute), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 5+1 {
		t.Errorf("Prune deleted %d rows, want 6", n)
	}
	left, _ := s.Strikes(ctx, time.Time{})
	if len(left) != 5 || !left[0].Time.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("strikes left: %+v", left)
	}
	hist, _ := s.History(ctx, Query{})
	if w := sorted([]int64{newEnded.ID, activeOld.ID}); !slices.Equal(sorted(ids(hist)), w) {
		t.Errorf("bans left %v, want %v", ids(hist), w)
	}
	var ev int
	if err := s.r.QueryRow(`SELECT count(*) FROM evidence`).Scan(&ev); err != nil || ev != 2 {
		t.Errorf("evidence rows left %d, %v; want 2", ev, err)
	}
	if n, err := s.Prune(ctx, time.Time{}, time.Time{}); err != nil || n != 0 {
		t.Errorf("Prune(zero times): %d, %v", n, err)
	}
}

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db", "banwatch.db")
	s, err := Open(ctx, path, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	b := mkBan("2001:db8::/64", "smtp", t0, time.Hour, "one", "two")
	commit(t, s, Batch{
		Positions: []source.Position{{Path: "/var/log/mail.log", Inode: 5, Offset: 55, Fingerprint: 555}},
		Strikes:   []ban.Strike{{Jail: "smtp", Addr: netip.MustParseAddr("2001:db8::7"), Time: t0, Kind: event.AuthFailure, Weight: 2, Line: "l"}},
		Bans:      []*ban.Ban{b},
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	pos, _ := s.Positions(ctx)
	if pos["/var/log/mail.log"].Offset != 55 {
		t.Errorf("positions %v", pos)
	}
	st, _ := s.Strikes(ctx, time.Time{})
	if len(st) != 1 || st[0].Weight != 2 || st[0].Addr != netip.MustParseAddr("2001:db8::7") {
		t.Errorf("strikes %+v", st)
	}
	h, _ := s.History(ctx, Query{})
	if len(h) != 1 || h[0].ID != b.ID || h[0].Prefix != b.Prefix || !slices.Equal(h[0].Evidence, b.Evidence) || !h[0].End.Equal(b.End) {
		t.Errorf("history %+v", h)
	}
	// IDs keep growing after a reopen.
	b2 := mkBan("192.0.2.1", "smtp", t0, time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{b2}})
	if b2.ID <= b.ID {
		t.Errorf("new ID %d after %d", b2.ID, b.ID)
	}
}

func TestCommitAtomic(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		bad  *ban.Ban
	}{
		{"invalid prefix", &ban.Ban{Jail: "smtp"}},
		{"nil ban", nil},
		{"bad ended, fails inside the transaction", func() *ban.Ban {
			b := mkBan("192.0.2.99", "smtp", t0, time.Hour)
			b.Ended = "bogus"
			return b
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, "")
			old := mkBan("192.0.2.1", "smtp", t0, time.Hour)
			commit(t, s, Batch{Positions: []source.Position{{Path: "/log", Offset: 10}}, Bans: []*ban.Ban{old}})

			good := mkBan("192.0.2.1", "smtp", t0.Add(time.Minute), time.Hour, "x") // would replace old
			err := s.Commit(ctx, Batch{
				Positions: []source.Position{{Path: "/log", Offset: 20}, {Path: "/other", Offset: 1}},
				Strikes:   []ban.Strike{{Jail: "smtp", Addr: netip.MustParseAddr("192.0.2.1"), Time: t0, Kind: event.AuthFailure, Weight: 1}},
				Bans:      []*ban.Ban{good, c.bad},
			})
			if err == nil || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("Commit: %v, want a store: error", err)
			}
			if good.ID != 0 {
				t.Errorf("ID set by a failed commit: %d", good.ID)
			}
			pos, _ := s.Positions(ctx)
			if len(pos) != 1 || pos["/log"].Offset != 10 {
				t.Errorf("positions %v", pos)
			}
			if st, _ := s.Strikes(ctx, time.Time{}); len(st) != 0 {
				t.Errorf("strikes %v", st)
			}
			h, _ := s.History(ctx, Query{})
			if len(h) != 1 || h[0].ID != old.ID || h[0].Ended != ban.EndActive {
				t.Errorf("bans %+v", h)
			}
			// The store still works.
			commit(t, s, Batch{Bans: []*ban.Ban{good}})
		})
	}
	s := openTest(t, "")
	if err := s.Commit(ctx, Batch{Strikes: []ban.Strike{{Jail: "x"}}}); err == nil {
		t.Error("strike without an address: no error")
	}
}

func TestCancelledContext(t *testing.T) {
	s := openTest(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Commit(ctx, Batch{Positions: []source.Position{{Path: "/x"}}}); err == nil {
		t.Error("Commit with a cancelled context: no error")
	}
	if pos, _ := s.Positions(context.Background()); len(pos) != 0 {
		t.Errorf("positions %v", pos)
	}
}

func TestConcurrentReaders(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	const batches = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(stop)
		for i := range batches {
			var b Batch
			b.Positions = []source.Position{{Path: "/log", Offset: int64(i + 1)}}
			for j := range 20 {
				a := netip.AddrFrom4([4]byte{10, byte(i), byte(j), 1})
				b.Strikes = append(b.Strikes, ban.Strike{Jail: "smtp", Addr: a, Time: t0.Add(time.Duration(i) * time.Second), Kind: event.AuthFailure, Weight: 1, Line: "l"})
				b.Bans = append(b.Bans, mkBan(a.String(), "smtp", t0.Add(time.Duration(i)*time.Second), time.Hour, "l"))
			}
			if err := s.Commit(ctx, b); err != nil {
				errs <- err
				return
			}
			if i%10 == 0 {
				if _, err := s.Expire(ctx, t0); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Consistency within a snapshot: every strike batch
				// commits with its bans and position.
				var err error
				switch r {
				case 0:
					var act []ban.Ban
					act, err = s.Active(ctx, t0)
					if err == nil && len(act)%20 != 0 {
						err = fmt.Errorf("torn batch: %d active bans", len(act))
					}
				case 1:
					_, err = s.History(ctx, Query{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Limit: 50})
				case 2:
					var st []ban.Strike
					st, err = s.Strikes(ctx, time.Time{})
					if err == nil && len(st)%20 != 0 {
						err = fmt.Errorf("torn batch: %d strikes", len(st))
					}
				case 3:
					_, err = s.CountActive(ctx, t0)
					if err == nil {
						_, err = s.Positions(ctx)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	act, err := s.Active(ctx, t0)
	if err != nil || len(act) != batches*20 {
		t.Errorf("active %d, %v", len(act), err)
	}
}

// TestCorruptRow checks that a row the schema should never hold (written
// here past the CHECK constraints) is an error, not a wrong ban.
func TestCorruptRow(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, "")
	var good []*ban.Ban
	for i := range 3000 { // several blocks of readActive
		good = append(good, mkBan(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), "smtp", t0, time.Hour))
	}
	commit(t, s, Batch{Bans: good})
	if _, err := s.w.Exec(`PRAGMA ignore_check_constraints = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO bans (addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns)
		VALUES (x'0501', 8, 'smtp', 'jail', 1, ?, 1, '', 0, 0)`, toNS(t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`PRAGMA ignore_check_constraints = 0`); err != nil {
		t.Fatal(err)
	}
	if act, err := s.Active(ctx, t0); err == nil || !strings.HasPrefix(err.Error(), "store: active: ") {
		t.Errorf("Active over a corrupt row: %d bans, %v", len(act), err)
	}
	if _, err := s.History(ctx, Query{Jail: "smtp"}); err == nil {
		t.Error("History over a corrupt row: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Active(cctx, t0); err == nil {
		t.Error("Active with a cancelled context: no error")
	}
}

// TestCacheSizes checks the page cache each pool's connections get: the
// writer's large, the readers' small (see writeCacheKiB).
func TestCacheSizes(t *testing.T) {
	s := openTest(t, "")
	for _, c := range []struct {
		name string
		db   *sql.DB
		want int
	}{
		{"writer", s.w, -writeCacheKiB},
		{"reader", s.r, -readCacheKiB},
	} {
		var got int
		if err := c.db.QueryRow(`PRAGMA cache_size`).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: cache_size %d, want %d", c.name, got, c.want)
		}
	}
}

// queryPlan returns the lines of SQLite's plan of the query text.
func queryPlan(t *testing.T, s *Store, text string, args []any) []string {
	t.Helper()
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+text, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}
