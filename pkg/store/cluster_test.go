package store

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
)

// pendingKinds lists the outbox's changes as "kind prefix jail".
func pendingKinds(t *testing.T, s *Store) ([]string, []Pending) {
	t.Helper()
	ps, err := s.Pending(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		switch p.Kind {
		case "strike":
			out = append(out, p.Kind+" "+p.Strike.Addr.String()+" "+p.Strike.Jail)
		default:
			out = append(out, p.Kind+" "+ban.IP(p.Ban.Prefix)+" "+p.Ban.Jail)
		}
	}
	return out, ps
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	s := openTest(t, "")

	// Without a cluster nothing is queued.
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.1", "postfix", t0, time.Hour, "line 1")}})
	if got, _ := pendingKinds(t, s); len(got) != 0 {
		t.Fatalf("outbox without a cluster: %v", got)
	}

	s.SetOutbox(OutboxBans)
	remote := mkBan("192.0.2.9", "postfix", t0, time.Hour)
	remote.Node = "mx2"
	strike := ban.Strike{Jail: "postfix", Addr: netip.MustParseAddr("192.0.2.3"), Time: t0, Kind: "auth_failure", Weight: 1, Line: "x"}
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.2", "postfix", t0, time.Hour, "line 2"), remote}, Strikes: []ban.Strike{strike}})
	if _, err := s.Unban(ctx, netip.MustParsePrefix("192.0.2.1/32"), "", t0.Add(time.Minute), "uid 0"); err != nil {
		t.Fatal(err)
	}
	got, ps := pendingKinds(t, s)
	// The remote ban is not sent back, and strikes are not sent without
	// OutboxStrikes.
	if want := []string{"ban 192.0.2.2 postfix", "unban 192.0.2.1 postfix"}; !slices.Equal(got, want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	if b := ps[0].Ban; b.ID == 0 || !slices.Equal(b.Evidence, []string{"line 2"}) || !b.End.Equal(t0.Add(time.Hour)) || b.Node != "" {
		t.Errorf("pending ban %+v", b)
	}
	if u := ps[1].Ban; u.EndedBy != "uid 0" || !u.EndedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("pending unban %+v", u)
	}
	if ps[0].Seq >= ps[1].Seq {
		t.Errorf("numbers %d, %d: want increasing", ps[0].Seq, ps[1].Seq)
	}

	s.SetOutbox(OutboxBans | OutboxStrikes)
	remoteStrike := strike
	remoteStrike.Node = "mx2"
	commit(t, s, Batch{Strikes: []ban.Strike{strike, remoteStrike}})
	got, ps = pendingKinds(t, s)
	if want := []string{"ban 192.0.2.2 postfix", "unban 192.0.2.1 postfix", "strike 192.0.2.3 postfix"}; !slices.Equal(got, want) {
		t.Fatalf("outbox %v, want %v", got, want)
	}
	if k := ps[2].Strike; k.Kind != "auth_failure" || k.Weight != 1 || !k.Time.Equal(t0) {
		t.Errorf("pending strike %+v", k)
	}

	// Sent removes up to a number; numbers are never used again, even
	// after the last row is gone.
	last := ps[2].Seq
	if err := s.Sent(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got, _ := pendingKinds(t, s); len(got) != 0 {
		t.Fatalf("outbox after Sent: %v", got)
	}
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.4", "postfix", t0, time.Hour)}})
	if _, ps = pendingKinds(t, s); len(ps) != 1 || ps[0].Seq <= last {
		t.Fatalf("after Sent(%d): %+v", last, ps)
	}
	// OutboxAfter moves the numbers on (a store restored from a backup).
	if err := s.OutboxAfter(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	commit(t, s, Batch{Bans: []*ban.Ban{mkBan("192.0.2.5", "postfix", t0, time.Hour)}})
	if _, ps = pendingKinds(t, s); len(ps) != 2 || ps[1].Seq != 1001 {
		t.Fatalf("after OutboxAfter(1000): %+v", ps)
	}
}

func TestClusterStateAndApplyRemote(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "banwatch.db")
	s := openTest(t, path)
	s.SetOutbox(OutboxBans)
	src, cursor, err := s.ClusterState(ctx)
	if err != nil || len(src) != 16 || cursor != 0 {
		t.Fatalf("ClusterState = %q, %d, %v; want a 16-digit name and 0", src, cursor, err)
	}

	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	local := mkBan("192.0.2.1", "postfix", now.Add(-time.Hour), 2*time.Hour)
	commit(t, s, Batch{Bans: []*ban.Ban{local}})
	_ = s.Sent(ctx, 1<<40)

	remote := func(ip string, start time.Time, d time.Duration) *ban.Ban {
		b := mkBan(ip, "postfix", start, d, "remote line")
		b.Node = "mx2"
		return b
	}
	unban := func(ip string, at time.Time) *RemoteUnban {
		return &RemoteUnban{Node: "mx3", Jail: "postfix", Prefix: ban.PrefixOf(netip.MustParseAddr(ip)), At: at, By: "uid 0"}
	}
	changes := []Remote{
		{Ban: remote("192.0.2.1", now.Add(-time.Hour), time.Hour+time.Minute)},   // ends before the local ban: skipped
		{Ban: remote("192.0.2.2", now.Add(-time.Minute), time.Hour)},             // new
		{Ban: remote("192.0.2.2", now.Add(-time.Minute), time.Hour)},             // the same again: skipped
		{Ban: remote("192.0.2.2", now.Add(-time.Minute), time.Hour+time.Second)}, // made a second later elsewhere: the same
		{Ban: remote("192.0.2.3", now.Add(-2*time.Hour), time.Hour)},             // over: skipped
		{Ban: remote("192.0.2.1", now.Add(-time.Minute), 3*time.Hour)},           // longer: replaces the local one
		{Unban: unban("192.0.2.2", now.Add(-30*time.Second))},                    // ends 192.0.2.2
		{Ban: remote("192.0.2.4", now, time.Hour)},                               // made after the next unban
		{Unban: unban("192.0.2.4", now.Add(-time.Second))},                       // older than the ban: it stands
		{Ban: &ban.Ban{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Jail: "postfix", Node: "mx2", End: now.Add(time.Hour)}},
	}
	applied, err := s.ApplyRemote(ctx, changes, 42, now)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for _, b := range applied.Added {
		added = append(added, ban.IP(b.Prefix)+" "+b.Node)
		if b.ID == 0 {
			t.Errorf("added ban %v without an ID", b.Prefix)
		}
	}
	if want := []string{"192.0.2.2 mx2", "192.0.2.1 mx2", "192.0.2.4 mx2", "198.51.100.0/24 mx2"}; !slices.Equal(added, want) {
		t.Errorf("added %v, want %v", added, want)
	}
	if len(applied.Ended) != 1 || ban.IP(applied.Ended[0].Prefix) != "192.0.2.2" || applied.Ended[0].EndedBy != "uid 0 on mx3" {
		t.Errorf("ended %+v, want 192.0.2.2 by uid 0 on mx3", applied.Ended)
	}
	active, err := s.Active(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	var act []string
	for _, b := range active {
		act = append(act, ban.IP(b.Prefix)+" "+b.Node)
	}
	slices.Sort(act)
	if want := []string{"192.0.2.1 mx2", "192.0.2.4 mx2", "198.51.100.0/24 mx2"}; !slices.Equal(act, want) {
		t.Errorf("active %v, want %v", act, want)
	}
	h, err := s.History(ctx, Query{Prefix: netip.MustParsePrefix("192.0.2.2/32")})
	if err != nil || len(h) != 1 || !slices.Equal(h[0].Evidence, []string{"remote line"}) || h[0].Node != "mx2" {
		t.Errorf("history of 192.0.2.2: %+v, %v", h, err)
	}
	// Nothing received goes back to the cluster.
	if got, _ := pendingKinds(t, s); len(got) != 0 {
		t.Errorf("outbox after ApplyRemote: %v", got)
	}

	s.Close()
	s = openTest(t, path)
	if src2, cursor, err := s.ClusterState(ctx); err != nil || src2 != src || cursor != 42 {
		t.Errorf("after reopening: ClusterState = %q, %d, %v; want %q, 42", src2, cursor, err, src)
	}
}
