package web

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
	"github.com/banwatch/banwatch/pkg/web/webtest"
)

var (
	benchBans = flag.Int("web-bench-bans", 1_000_000, "bans in BenchmarkPage's history")
	benchDir  = flag.String("web-bench-dir", os.TempDir(), "where BenchmarkPage keeps its database between runs")
)

// benchNow is where the benchmark's history ends; the page's clock stands
// there, so that a database made once serves every later run.
var benchNow = time.Date(2026, 11, 28, 13, 25, 0, 0, time.UTC)

// benchStore opens the benchmark's database, writing it first when
// missing: -web-bench-bans bans over a week (1,000,000 take about a
// minute), kept in -web-bench-dir under a name with the schema version,
// webtest's version and the size.
func benchStore(b *testing.B) *store.Store {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(*benchDir, fmt.Sprintf("banwatch-web-bench-v%d-g%d-%d.db", store.SchemaVersion, webtest.Version, *benchBans))
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		part := path + ".part"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(part + suffix)
		}
		st, err := store.Open(ctx, part, nil)
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		_, err = webtest.Write(ctx, st, webtest.Spec{Now: benchNow, Bans: *benchBans, Strikes: *benchBans / 2, Evidence: 2, Seed: 7,
			Progress: func(done int) {
				if done%100_000 == 0 {
					fmt.Fprintf(os.Stderr, "BenchmarkPage: %d bans written in %v\n", done, time.Since(t).Round(time.Second))
				}
			}})
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(part, path); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "BenchmarkPage: %s written in %v\n", path, time.Since(t).Round(time.Second))
	} else if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkPage times the page's requests through the real handler over
// a store of -web-bench-bans bans, with the top lists computed (once, in
// "top-lists": the background work a request never waits for).
//
//	go test -run '^$' -bench BenchmarkPage -benchtime 20x ./pkg/web
func BenchmarkPage(b *testing.B) {
	st := benchStore(b)
	src := storeSource{Store: st, fps: []control.Fingerprint{{Jail: "postfix", Value: "helo=win-clj1b0gq6jp", Until: benchNow.Add(6 * 24 * time.Hour)}}}
	c := &clock{t: benchNow.Add(time.Minute)}
	s, err := New(Options{Source: src, Host: "mx1", Now: c.Now, Location: paris, Refresh: 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.refreshers(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	t0 := time.Now()
	ready(s)
	if st := s.top.get(); st.cur == nil {
		b.Fatalf("no top lists: %v", st.err)
	}
	b.Logf("first top lists of %d bans: %v", *benchBans, time.Since(t0).Round(time.Millisecond))

	newest, err := st.HistoryPage(ctx, store.PageQuery{Limit: 1})
	if err != nil || len(newest) != 1 {
		b.Fatal(newest, err)
	}
	mid, err := st.HistoryPage(ctx, store.PageQuery{Before: store.Cursor{Start: benchNow.Add(-3 * 24 * time.Hour)}, Limit: 1})
	if err != nil || len(mid) != 1 {
		b.Fatal(mid, err)
	}
	paths := []struct{ name, path string }{
		{"overview", "/"},
		{"history", "/history"},
		// A /16 of about 500 bans, and the one of 15% of them all.
		{"history-16", "/history?addr=10.200.0.0/16"},
		{"history-16-hot", "/history?addr=" + webtest.Hot16.String()},
		{"history-unbanned", "/history?ended=unbanned"},
		{"history-deep", "/history?before=" + formatCursor(store.Cursor{Start: mid[0].Start, ID: mid[0].ID})},
		{"ban", fmt.Sprintf("/ban/%d", newest[0].ID)},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", p.path, nil)
			check := httptest.NewRecorder()
			s.ServeHTTP(check, req)
			if check.Code != http.StatusOK {
				b.Fatalf("%s: status %d\n%s", p.path, check.Code, check.Body)
			}
			for b.Loop() {
				s.ServeHTTP(httptest.NewRecorder(), req)
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/1e6, "ms/op")
		})
	}
	b.Run("top-lists", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.top.compute(ctx, c.Now()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/1e6, "ms/op")
	})
}
