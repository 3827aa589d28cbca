package store

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkApplyRemote stores other nodes' bans as a cluster node
// receives them: batches of 1,000 new bans, each with two evidence lines,
// into a store that already holds 100,000; it reports the cost a ban.
func BenchmarkApplyRemote(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "bench.db"))
	ctx := context.Background()
	const held, per = 100_000, 1000
	for i := 0; i < held; i += 10_000 {
		batch := Batch{}
		for j := i; j < i+10_000; j++ {
			batch.Bans = append(batch.Bans, benchBan(j, t0))
		}
		if err := s.Commit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	n := held
	cursor := int64(0)
	b.ResetTimer()
	for b.Loop() {
		changes := make([]Remote, per)
		for j := range changes {
			bn := benchBan(n, t0)
			bn.Node = "mx2"
			changes[j] = Remote{Ban: bn}
			n++
		}
		cursor += per
		if _, err := s.ApplyRemote(ctx, changes, cursor, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*per), "µs/ban")
}
