package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/pgtest"
)

// BenchmarkAppend appends batches of 5,000 bans from one node to a
// throwaway PostgreSQL, as a node's sender does under a flood: as they are
// made (without number), then read as another node's fetcher does, then
// again from the outbox (numbered, completing the first copies); it
// reports the cost a ban of each step.
func BenchmarkAppend(b *testing.B) {
	if testing.Short() {
		b.Skip("starts PostgreSQL")
	}
	srv := pgtest.Start(b)
	ctx := context.Background()
	ctxT, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := Connect(ctxT, Options{DSN: srv.DSN(), Node: "mx1"})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	r, err := Connect(ctxT, Options{DSN: srv.DSN(), Node: "mx2"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const per = 5000
	seq := int64(0)
	now := time.Now().UTC()
	var appendT, sinceT, outboxT time.Duration
	cursor := int64(0)
	for b.Loop() {
		batch, outbox := make([]Change, per), make([]Change, per)
		for i := range batch {
			seq++
			ip := netip.AddrFrom4([4]byte{10, byte(seq >> 16), byte(seq >> 8), byte(seq)})
			outbox[i] = banChange("s1", seq, ip.String(), now, time.Hour)
			batch[i] = outbox[i]
			batch[i].NodeSeq, batch[i].Evidence = 0, nil
		}
		t0 := time.Now()
		if _, err := a.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		got, err := r.Since(ctx, cursor, 10000, false)
		if err != nil || len(got) != per {
			b.Fatalf("Since: %d, %v", len(got), err)
		}
		cursor = got[len(got)-1].Seq
		t2 := time.Now()
		if n, err := a.Append(ctx, outbox); err != nil || n != 0 {
			b.Fatalf("Append from the outbox: %d new, %v", n, err)
		}
		appendT += t1.Sub(t0)
		sinceT += t2.Sub(t1)
		outboxT += time.Since(t2)
	}
	b.ReportMetric(float64(appendT.Microseconds())/float64(b.N*per), "µs/append")
	b.ReportMetric(float64(sinceT.Microseconds())/float64(b.N*per), "µs/since")
	b.ReportMetric(float64(outboxT.Microseconds())/float64(b.N*per), "µs/outbox")
}
