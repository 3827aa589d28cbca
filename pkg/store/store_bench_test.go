package store

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/source"
)

var benchJails = []string{"postfix", "dovecot", "exim", "icewarp"}

const benchLine = "Mar  1 12:00:00 mx postfix/smtpd[12345]: warning: unknown[%v]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"

// benchBan returns the i-th ban of a benchmark: distinct IPv4 /32s.
func benchBan(i int, start time.Time) *ban.Ban {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	return &ban.Ban{
		Prefix: ban.PrefixOf(a), Jail: benchJails[i%len(benchJails)], Origin: ban.OriginJail,
		Start: start, End: start.Add(time.Hour), Strikes: 5, Reason: "auth_failure,bad_helo",
		FirstEvent: start.Add(-time.Minute), LastEvent: start,
		Evidence: []string{fmt.Sprintf(benchLine, a), fmt.Sprintf(benchLine, a)},
	}
}

// BenchmarkCommit commits the daemon's typical batch: 1,000 strikes,
// 10 bans and 3 positions.
func BenchmarkCommit(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	n := 0
	for b.Loop() {
		var batch Batch
		for j := range 3 {
			batch.Positions = append(batch.Positions, source.Position{Path: fmt.Sprintf("/var/log/mail%d.log", j), Inode: 42, Offset: int64(n), Fingerprint: 7})
		}
		for j := range 1000 {
			a := netip.AddrFrom4([4]byte{192, byte(n >> 8), byte(n), byte(j)})
			batch.Strikes = append(batch.Strikes, ban.Strike{
				Jail: benchJails[j%len(benchJails)], Addr: a, Time: t0.Add(time.Duration(n) * time.Second),
				Kind: event.AuthFailure, Weight: 1, Line: fmt.Sprintf(benchLine, a),
			})
		}
		for j := range 10 {
			batch.Bans = append(batch.Bans, benchBan(n*10+j, t0))
		}
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkMillion inserts 1,000,000 bans through Commit in batches of
// 10,000, then times Active, CountActive, History, Expire and Prune over
// them. Run it with -benchtime=1x; it is skipped under -short.
func BenchmarkMillion(b *testing.B) {
	if testing.Short() {
		b.Skip("1M bans: not in -short")
	}
	const total, per = 1_000_000, 10_000
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s, err := Open(ctx, filepath.Join(b.TempDir(), "million.db"), testLogger())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start := time.Now()
		for i := 0; i < total; i += per {
			batch := Batch{Bans: make([]*ban.Ban, 0, per)}
			for j := i; j < i+per; j++ {
				batch.Bans = append(batch.Bans, benchBan(j, t0))
			}
			if err := s.Commit(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "insert-s")

		// Active is the daemon's start-up load: time it on a reopened
		// store (cold SQLite caches) with the insert's garbage collected.
		path := s.path
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if s, err = Open(ctx, path, testLogger()); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		start = time.Now()
		act, err := s.Active(ctx, t0)
		if err != nil || len(act) != total {
			b.Fatalf("Active: %d, %v", len(act), err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "active-s")
		act = nil

		start = time.Now()
		cnt, err := s.CountActive(ctx, t0)
		if err != nil || cnt["postfix"] != total/4 {
			b.Fatalf("CountActive: %v, %v", cnt, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "count-s")

		start = time.Now()
		h, err := s.History(ctx, Query{Prefix: netip.MustParsePrefix("10.1.2.0/24")})
		if err != nil || len(h) != 256 {
			b.Fatalf("History: %d, %v", len(h), err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "history24-s")

		start = time.Now()
		n, err := s.Expire(ctx, t0.Add(time.Hour))
		if err != nil || n != total {
			b.Fatalf("Expire: %d, %v", n, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "expire-s")

		start = time.Now()
		pruned, err := s.Prune(ctx, t0, t0.Add(2*time.Hour))
		if err != nil || pruned != total {
			b.Fatalf("Prune: %d, %v", pruned, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "prune-s")

		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkCommitStrikes commits what a heavy attack from many addresses
// makes: batches of strikes of random IPv4 addresses, their times 50 µs
// apart (20,000 strikes a second of log), and 10 bans per batch whose
// evidence comes from the strikes (Commit looks it up). It reports strikes
// committed per second, over a database that grows as it runs.
//
//	go test -run '^$' -bench CommitStrikes -benchtime 20s ./pkg/store
func BenchmarkCommitStrikes(b *testing.B) {
	for _, per := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", per), func(b *testing.B) {
			s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
			ctx := context.Background()
			rng := rand.New(rand.NewSource(1))
			n := 0
			for b.Loop() {
				var batch Batch
				batch.Positions = []source.Position{{Path: "/var/log/mail.log", Inode: 42, Offset: int64(n), Fingerprint: 7}}
				for range per {
					a := netip.AddrFrom4([4]byte{byte(1 + rng.Intn(223)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))})
					batch.Strikes = append(batch.Strikes, ban.Strike{
						Jail: "postfix", Addr: a, Time: t0.Add(time.Duration(n) * 50 * time.Microsecond),
						Kind: event.AuthFailure, Weight: 1, Line: fmt.Sprintf(benchLine, a),
					})
					n++
				}
				for j := range 10 {
					k := batch.Strikes[j*per/10]
					batch.Bans = append(batch.Bans, &ban.Ban{Prefix: ban.PrefixOf(k.Addr), Jail: "postfix", Origin: ban.OriginJail,
						Start: k.Time, End: k.Time.Add(time.Hour), Strikes: 5, Reason: "auth_failure",
						FirstEvent: k.Time.Add(-10 * time.Minute), LastEvent: k.Time})
				}
				if err := s.Commit(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if len(batch.Bans[0].Evidence) != 1 {
					b.Fatalf("evidence %q", batch.Bans[0].Evidence)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "strikes/s")
		})
	}
}

// BenchmarkCommitBans commits what a flood of new addresses banned on
// their first strike makes (bench/daemon's ban install): batches of
// 1,000 strikes of distinct addresses and a ban of each, whose evidence
// Commit looks up from the strikes. It reports bans committed per second.
//
//	go test -run '^$' -bench CommitBans -benchtime 20x ./pkg/store
func BenchmarkCommitBans(b *testing.B) {
	const per = 1000
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	n := 0
	for b.Loop() {
		var batch Batch
		batch.Positions = []source.Position{{Path: "/var/log/mail.log", Inode: 42, Offset: int64(n), Fingerprint: 7}}
		for range per {
			a := netip.AddrFrom4([4]byte{198, byte(18 + n>>16), byte(n >> 8), byte(n)})
			tm := t0.Add(time.Duration(n) * 10 * time.Microsecond)
			batch.Strikes = append(batch.Strikes, ban.Strike{
				Jail: "postfix", Addr: a, Time: tm, Kind: event.AuthFailure, Weight: 1, Line: fmt.Sprintf(benchLine, a),
			})
			batch.Bans = append(batch.Bans, &ban.Ban{Prefix: ban.PrefixOf(a), Jail: "postfix", Origin: ban.OriginJail,
				Start: tm, End: tm.Add(time.Hour), Strikes: 1, Reason: "auth_failure",
				FirstEvent: tm, LastEvent: tm, Ended: ban.EndActive})
			n++
		}
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if len(batch.Bans[0].Evidence) != 1 {
			b.Fatalf("evidence %q", batch.Bans[0].Evidence)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "bans/s")
}
