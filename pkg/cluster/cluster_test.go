package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/pgtest"
)

func connect(t *testing.T, srv *pgtest.Server, node string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{DSN: srv.DSN(), Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func banChange(source string, seq int64, ip string, at time.Time, d time.Duration) Change {
	a := netip.MustParseAddr(ip)
	return Change{Source: source, NodeSeq: seq, Kind: KindBan, Jail: "postfix", Prefix: netip.PrefixFrom(a, a.BitLen()),
		At: at, End: at.Add(d), Origin: "jail", Reason: "auth_failure", Strikes: 5, FirstEvent: at.Add(-time.Minute),
		LastEvent: at, Evidence: []string{"line 1", "line 2"}}
}

// describe writes changes as "node kind prefix" for comparisons.
func describe(cs []Change) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %s", c.Node, c.Kind, c.Prefix))
	}
	return strings.Join(out, ", ")
}

func TestMigrateOnceWhenNodesStartTogether(t *testing.T) {
	srv := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Connect(context.Background(), Options{DSN: srv.DSN(), Node: fmt.Sprintf("mx%d", i)})
			if err == nil {
				c.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := srv.Psql(t, "SELECT version FROM banwatch_schema"); strings.TrimSpace(got) != fmt.Sprint(SchemaVersion) {
		t.Errorf("schema version %q, want %d", got, SchemaVersion)
	}
	// A newer schema is refused with a message that says what to do.
	srv.Psql(t, "UPDATE banwatch_schema SET version = 99")
	_, err := Connect(context.Background(), Options{DSN: srv.DSN(), Node: "mx9"})
	if err == nil || !strings.Contains(err.Error(), "newer than this program's") {
		t.Errorf("Connect to a newer schema: %v", err)
	}
}

func TestAppendSinceActive(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	a, b := connect(t, srv, "mx1"), connect(t, srv, "mx2")
	now := time.Now().UTC().Truncate(time.Microsecond)

	batch := []Change{
		banChange("s1", 1, "192.0.2.1", now, time.Hour),
		banChange("s1", 2, "192.0.2.2", now, time.Hour),
		banChange("s1", 3, "2001:db8::7", now, time.Hour),
		banChange("s1", 4, "192.0.2.3", now.Add(-2*time.Hour), time.Hour), // over
		{Source: "s1", NodeSeq: 5, Kind: KindUnban, Jail: "postfix", Prefix: netip.MustParsePrefix("192.0.2.2/32"), At: now.Add(time.Second), By: "uid 0"},
	}
	if n, err := a.Append(ctx, batch); err != nil || n != 5 {
		t.Fatalf("Append = %d, %v; want 5 new", n, err)
	}
	// Sent again (a retry after a lost answer): nothing new.
	if n, err := a.Append(ctx, batch[:3]); err != nil || n != 0 {
		t.Fatalf("Append again = %d, %v; want 0 new", n, err)
	}
	if last, err := a.LastSent(ctx, "s1"); err != nil || last != 5 {
		t.Errorf("LastSent(s1) = %d, %v; want 5", last, err)
	}
	if last, err := b.LastSent(ctx, "s1"); err != nil || last != 0 {
		t.Errorf("LastSent(s1) on mx2 = %d, %v; want 0 (mx1's numbers)", last, err)
	}
	// The same numbers from a new store (another source) are new.
	if n, err := a.Append(ctx, []Change{banChange("s2", 1, "198.51.100.1", now, time.Hour)}); err != nil || n != 1 {
		t.Fatalf("Append from a new source = %d, %v; want 1", n, err)
	}

	// B sees A's changes in order, with every field; A sees none of its own.
	got, err := b.Since(ctx, 0, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := "mx1 ban 192.0.2.1/32, mx1 ban 192.0.2.2/32, mx1 ban 2001:db8::7/128, mx1 ban 192.0.2.3/32, mx1 unban 192.0.2.2/32, mx1 ban 198.51.100.1/32"; describe(got) != want {
		t.Fatalf("Since(0) on mx2 = %s\nwant %s", describe(got), want)
	}
	first := got[0]
	if !first.At.Equal(now) || !first.End.Equal(now.Add(time.Hour)) || first.Reason != "auth_failure" || first.Strikes != 5 ||
		!first.FirstEvent.Equal(now.Add(-time.Minute)) || strings.Join(first.Evidence, "|") != "line 1|line 2" || first.Source != "s1" || first.NodeSeq != 1 {
		t.Errorf("first change read back as %+v", first)
	}
	if got[4].By != "uid 0" {
		t.Errorf("unban by %q", got[4].By)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Errorf("numbers not increasing: %d then %d", got[i-1].Seq, got[i].Seq)
		}
	}
	if own, err := a.Since(ctx, 0, 100, false); err != nil || len(own) != 0 {
		t.Errorf("Since on mx1 = %s, %v; want none of its own", describe(own), err)
	}
	if part, err := b.Since(ctx, got[1].Seq, 2, false); err != nil || describe(part) != "mx1 ban 2001:db8::7/128, mx1 ban 192.0.2.3/32" {
		t.Errorf("Since(second) limit 2 = %s, %v", describe(part), err)
	}

	// Strikes only for those who share them.
	strike := Change{Source: "s1", NodeSeq: 6, Kind: KindStrike, Jail: "postfix", Prefix: netip.MustParsePrefix("203.0.113.5/32"), At: now, Event: "auth_failure", Weight: 1}
	if _, err := a.Append(ctx, []Change{strike}); err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1].Seq
	if s, err := b.Since(ctx, last, 100, false); err != nil || len(s) != 0 {
		t.Errorf("Since without strikes = %s, %v", describe(s), err)
	}
	if s, err := b.Since(ctx, last, 100, true); err != nil || describe(s) != "mx1 strike 203.0.113.5/32" || s[0].Event != "auth_failure" || s[0].Weight != 1 {
		t.Errorf("Since with strikes = %+v, %v", s, err)
	}

	// Active: A's bans in force, not the unbanned one nor the one over.
	act, lastSeq, err := b.Active(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "mx1 ban 192.0.2.1/32, mx1 ban 2001:db8::7/128, mx1 ban 198.51.100.1/32"; describe(act) != want {
		t.Errorf("Active = %s\nwant %s", describe(act), want)
	}
	if wantLast, err := b.Last(ctx); err != nil || lastSeq != wantLast {
		t.Errorf("Active's last = %d, Last = %d (%v)", lastSeq, wantLast, err)
	}
	// A ban made again after an unban is in force.
	if _, err := a.Append(ctx, []Change{banChange("s1", 7, "192.0.2.2", now.Add(2*time.Second), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if act, _, err = b.Active(ctx, now); err != nil || !strings.Contains(describe(act), "192.0.2.2/32") {
		t.Errorf("Active after a new ban of an unbanned address = %s, %v", describe(act), err)
	}
}

func TestListenWakesWithinASecond(t *testing.T) {
	srv := pgtest.Start(t)
	a, b := connect(t, srv, "mx1"), connect(t, srv, "mx2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wakes := make(chan struct{}, 16)
	up := make(chan bool, 16)
	done := make(chan error, 1)
	go func() {
		done <- b.Listen(ctx, func() { wakes <- struct{}{} }, func(c bool) { up <- c })
	}()
	if !<-up {
		t.Fatal("first connected(false)")
	}
	<-wakes // the wake after connecting
	// Its own appends do not wake it.
	if _, err := b.Append(ctx, []Change{banChange("b", 1, "192.0.2.9", time.Now(), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.Append(ctx, []Change{banChange("a", 1, "192.0.2.1", time.Now(), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wakes:
		t.Logf("woken %v after the append", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("not woken within a second of another node's append")
	}
	select {
	case <-wakes:
		t.Error("woken twice: by its own append too")
	case <-time.After(200 * time.Millisecond):
	}

	// PostgreSQL goes away and comes back: Listen reconnects and wakes.
	srv.Stop(t)
	if <-up {
		t.Fatal("connected(true) while the server is down")
	}
	srv.Restart(t)
	select {
	case c := <-up:
		if !c {
			t.Fatal("connected(false) after the restart")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not listening again within 15 s of the restart")
	}
	<-wakes
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Listen returned %v", err)
	}
}

func TestConnectOptions(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	// The password from a file, over TCP.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(pgtest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(srv.TCPDSN(), " password="+pgtest.Password, "", 1)
	c, err := Connect(ctx, Options{DSN: dsn, Node: "mx1", PasswordFile: pw})
	if err != nil {
		t.Fatalf("with password_file: %v", err)
	}
	c.Close()
	if _, err := Connect(ctx, Options{DSN: dsn, Node: "mx1"}); err == nil {
		t.Error("connected over TCP without the password")
	}
	// A bad connection string's error never shows the password.
	_, err = Connect(ctx, Options{DSN: "postgres://u:s3cret@host:notaport/db", Node: "mx1"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: %v", err)
	}
	_, err = Connect(ctx, Options{DSN: "host=x password=s3cret port=notaport", Node: "mx1"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad keyword string: %v", err)
	}
	// TLS files are passed on: a missing CA file fails the connection
	// string, not silently.
	tlsDSN := strings.Replace(srv.TCPDSN(), "sslmode=disable", "sslmode=verify-full", 1)
	if _, err := Connect(ctx, Options{DSN: tlsDSN, Node: "mx1", CAFile: "/nonexistent/ca.pem"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("with a CA file that does not exist: %v", err)
	}
}

func TestHistory(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	a, b := connect(t, srv, "mx1"), connect(t, srv, "mx2")
	now := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := a.Append(ctx, []Change{
		banChange("s1", 1, "192.0.2.1", now.Add(-3*time.Hour), time.Hour), // over
		banChange("s1", 2, "192.0.2.2", now.Add(-2*time.Hour), 10*time.Hour),
		banChange("s1", 3, "198.51.100.9", now.Add(-time.Hour), 10*time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, []Change{
		{Source: "s2", NodeSeq: 1, Kind: KindUnban, Jail: "postfix", Prefix: netip.MustParsePrefix("192.0.2.2/32"), At: now.Add(-time.Minute), By: "uid 0"},
		{Source: "s2", NodeSeq: 2, Kind: KindBan, Jail: "postfix", Prefix: netip.MustParsePrefix("192.0.2.0/24"), At: now, End: now.Add(time.Hour), Origin: "manual", Reason: "net"},
	}); err != nil {
		t.Fatal(err)
	}
	show := func(bs []Ban) string {
		var out []string
		for _, b := range bs {
			s := b.Node + " " + b.Prefix.String()
			if b.Unbanned != nil {
				s += " unbanned by " + b.Unbanned.By + " on " + b.Unbanned.Node
			}
			out = append(out, s)
		}
		return strings.Join(out, ", ")
	}
	for _, tc := range []struct {
		q    HistoryQuery
		want string
	}{
		{HistoryQuery{}, "mx2 192.0.2.0/24, mx1 198.51.100.9/32, mx1 192.0.2.2/32 unbanned by uid 0 on mx2, mx1 192.0.2.1/32"},
		{HistoryQuery{Limit: 2}, "mx2 192.0.2.0/24, mx1 198.51.100.9/32"},
		// Inside the prefix, and covering an address.
		{HistoryQuery{Prefix: netip.MustParsePrefix("192.0.2.0/24")}, "mx2 192.0.2.0/24, mx1 192.0.2.2/32 unbanned by uid 0 on mx2, mx1 192.0.2.1/32"},
		{HistoryQuery{Prefix: netip.MustParsePrefix("192.0.2.1/32")}, "mx2 192.0.2.0/24, mx1 192.0.2.1/32"},
		{HistoryQuery{Since: now.Add(-90 * time.Minute)}, "mx2 192.0.2.0/24, mx1 198.51.100.9/32"},
		{HistoryQuery{Jail: "sshd"}, ""},
	} {
		got, err := b.History(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if show(got) != tc.want {
			t.Errorf("History(%+v) = %s\nwant %s", tc.q, show(got), tc.want)
		}
	}
}

// A node sends its bans as it makes them (NodeSeq 0, no evidence yet) and
// again from its outbox: the cluster holds one ban, which the other nodes
// fetch once, and its history has the outbox copy's evidence.
func TestBanSentTwiceIsOneChange(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	a, b := connect(t, srv, "mx1"), connect(t, srv, "mx2")
	now := time.Now().UTC().Truncate(time.Microsecond)

	early := banChange("s1", 0, "192.0.2.1", now, time.Hour)
	early.Evidence = nil
	other := banChange("s1", 0, "192.0.2.2", now, time.Hour) // never sent from the outbox
	other.Evidence = nil
	if n, err := a.Append(ctx, []Change{early, other}); err != nil || n != 2 {
		t.Fatalf("Append as made = %d, %v; want 2 new", n, err)
	}
	// Sent again as made (a retry): nothing new.
	if n, err := a.Append(ctx, []Change{early}); err != nil || n != 0 {
		t.Fatalf("Append as made again = %d, %v; want 0 new", n, err)
	}
	got, err := b.Since(ctx, 0, 100, false)
	if err != nil || len(got) != 2 || got[0].NodeSeq != 0 || len(got[0].Evidence) != 0 {
		t.Fatalf("Since = %+v, %v; want the 2 bans without number or evidence", got, err)
	}
	cursor := got[1].Seq

	// The outbox's copy, numbered and with its evidence, then an unban.
	late := banChange("s1", 7, "192.0.2.1", now, time.Hour)
	unban := Change{Source: "s1", NodeSeq: 8, Kind: KindUnban, Jail: "postfix", Prefix: netip.MustParsePrefix("192.0.2.1/32"), At: now.Add(time.Second), By: "uid 0"}
	if n, err := a.Append(ctx, []Change{late, unban}); err != nil || n != 1 {
		t.Fatalf("Append from the outbox = %d, %v; want 1 new (the unban)", n, err)
	}
	got, err = b.Since(ctx, cursor, 100, false)
	if err != nil || describe(got) != "mx1 unban 192.0.2.1/32" {
		t.Fatalf("Since after the outbox = %q, %v; want the unban only", describe(got), err)
	}
	if last, err := a.LastSent(ctx, "s1"); err != nil || last != 8 {
		t.Errorf("LastSent = %d, %v; want 8", last, err)
	}
	hist, err := b.History(ctx, HistoryQuery{})
	if err != nil || len(hist) != 2 {
		t.Fatalf("History = %d bans, %v; want 2", len(hist), err)
	}
	for _, h := range hist {
		switch h.Prefix.String() {
		case "192.0.2.1/32":
			if len(h.Evidence) != 2 || h.Unbanned == nil {
				t.Errorf("ban sent twice: evidence %q, unbanned %v; want 2 lines, unbanned", h.Evidence, h.Unbanned)
			}
		default:
			if h.NodeSeq != 0 || len(h.Evidence) != 0 {
				t.Errorf("ban sent as made only: NodeSeq %d, evidence %q; want 0, none", h.NodeSeq, h.Evidence)
			}
		}
	}
	if got := srv.Psql(t, "SELECT count(*) FROM banwatch_changes WHERE kind = 'ban'"); strings.TrimSpace(got) != "2" {
		t.Errorf("%s ban rows; want 2", got)
	}
}

// Version 2 makes a ban one row by node, store, jail, prefix and start:
// a version 1 database with such a ban twice keeps the first.
func TestMigrateFromVersion1(t *testing.T) {
	srv := pgtest.Start(t)
	srv.Psql(t, migrations[0]+`
CREATE TABLE banwatch_schema (version integer NOT NULL);
INSERT INTO banwatch_schema VALUES (1);
INSERT INTO banwatch_changes (node, source, node_seq, kind, jail, prefix, at, end_at)
VALUES ('mx1', 's1', 1, 'ban', 'postfix', '192.0.2.1/32', '2026-11-28 10:00Z', '2026-12-05 10:00Z'),
       ('mx1', 's1', 2, 'ban', 'postfix', '192.0.2.1/32', '2026-11-28 10:00Z', '2026-12-05 10:00Z'),
       ('mx1', 's2', 1, 'ban', 'postfix', '192.0.2.1/32', '2026-11-28 10:00Z', '2026-12-05 10:00Z'),
       ('mx1', 's1', 3, 'unban', 'postfix', '192.0.2.1/32', '2026-11-28 11:00Z', NULL);`)
	connect(t, srv, "mx1")
	if got := srv.Psql(t, "SELECT version FROM banwatch_schema"); strings.TrimSpace(got) != fmt.Sprint(SchemaVersion) {
		t.Errorf("schema version %q, want %d", got, SchemaVersion)
	}
	if got := strings.TrimSpace(srv.Psql(t, "SELECT string_agg(source || ':' || node_seq, ' ' ORDER BY seq) FROM banwatch_changes")); got != "s1:1 s2:1 s1:3" {
		t.Errorf("rows after the migration %q; want s1:1 s2:1 s1:3", got)
	}
}

// Prune deletes old strikes, bans over before the history kept with their
// evidence, and the unbans no ban is left for; what is in force stays in
// force, and a node holding the prune lock keeps the others out.
func TestPrune(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	a, b := connect(t, srv, "mx1"), connect(t, srv, "mx2")
	now := time.Now().UTC().Truncate(time.Microsecond)
	day := 24 * time.Hour
	strike := func(seq int64, ip string, at time.Time) Change {
		return Change{Source: "s1", NodeSeq: seq, Kind: KindStrike, Jail: "postfix", Prefix: netip.MustParsePrefix(ip + "/32"), At: at, Event: "auth_failure", Weight: 1}
	}
	unban := func(seq int64, ip string, at time.Time) Change {
		return Change{Source: "s1", NodeSeq: seq, Kind: KindUnban, Jail: "postfix", Prefix: netip.MustParsePrefix(ip + "/32"), At: at, By: "uid 0"}
	}
	changes := []Change{
		strike(1, "203.0.113.1", now.Add(-3*day)),                  // old: goes
		strike(2, "203.0.113.2", now.Add(-time.Hour)),              // stays
		banChange("s1", 3, "192.0.2.1", now.Add(-40*day), 5*day),   // over 35 days ago: goes, with its evidence
		unban(4, "192.0.2.1", now.Add(-38*day)),                    // its ban gone: goes
		banChange("s1", 5, "192.0.2.2", now.Add(-2*day), day),      // over a day ago: kept as history
		banChange("s1", 6, "192.0.2.3", now, time.Hour),            // in force
		banChange("s1", 7, "192.0.2.4", now.Add(-40*day), 400*day), // a long ban...
		unban(8, "192.0.2.4", now.Add(-39*day)),                    // ...unbanned long ago: the unban must stay
		unban(9, "192.0.2.9", now.Add(-39*day)),                    // no ban of its prefix: goes
	}
	if _, err := a.Append(ctx, changes); err != nil {
		t.Fatal(err)
	}
	kept := func() string {
		return strings.TrimSpace(srv.Psql(t, "SELECT string_agg(kind || ' ' || host(prefix), ', ' ORDER BY seq) FROM banwatch_changes"))
	}
	evidence := func() string {
		return strings.TrimSpace(srv.Psql(t, "SELECT string_agg(host(prefix), ', ' ORDER BY prefix) FROM banwatch_evidence"))
	}
	if got := evidence(); got != "192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4" {
		t.Fatalf("evidence before pruning: %q", got)
	}
	active, _, err := b.Active(ctx, now)
	if err != nil || describe(active) != "mx1 ban 192.0.2.3/32" {
		t.Fatalf("Active before pruning = %s, %v", describe(active), err)
	}

	// Another node prunes: this one leaves everything.
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockPrune)); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Prune(ctx, now.Add(-day), now.Add(-30*day)); err != nil || n != 0 {
		t.Errorf("Prune while another node prunes = %d, %v; want 0", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	defer func(n int) { pruneChunk = n }(pruneChunk)
	pruneChunk = 1 // every step takes several chunks
	n, err := a.Prune(ctx, now.Add(-day), now.Add(-30*day))
	if err != nil || n != 4 {
		t.Errorf("Prune = %d, %v; want 4 changes deleted", n, err)
	}
	if got, want := kept(), "strike 203.0.113.2, ban 192.0.2.2, ban 192.0.2.3, ban 192.0.2.4, unban 192.0.2.4"; got != want {
		t.Errorf("changes kept: %s\nwant %s", got, want)
	}
	if got := evidence(); got != "192.0.2.2, 192.0.2.3, 192.0.2.4" {
		t.Errorf("evidence kept: %q", got)
	}
	if active, _, err := b.Active(ctx, now); err != nil || describe(active) != "mx1 ban 192.0.2.3/32" {
		t.Errorf("Active after pruning = %s, %v; want only 192.0.2.3", describe(active), err)
	}
	// Zero times prune nothing.
	if n, err := a.Prune(ctx, time.Time{}, time.Time{}); err != nil || n != 0 {
		t.Errorf("Prune(zero, zero) = %d, %v", n, err)
	}
}
