package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
)

// fillStore commits n active bans of distinct addresses to e's store.
func fillStore(tb testing.TB, e *testEnv, n int) {
	tb.Helper()
	st, err := store.Open(context.Background(), filepath.Join(e.cfg.Daemon.StateDir, DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if err := testutil.FillBans(context.Background(), st, n, "postfix", time.Now()); err != nil {
		tb.Fatal(err)
	}
}

// The daemon keeps banning while banctl lists 100,000 bans over and over.
func TestBanningGoesOnDuringList(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a store with 100,000 bans")
	}
	e := newEnv(t)
	fillStore(t, e, 100000)
	stop := e.start()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listed := make(chan int, 100)
	go func() {
		c := e.client()
		for ctx.Err() == nil {
			n := 0
			if c.List(ctx, "", "", func(*control.Ban, []byte) error { n++; return nil }) == nil {
				listed <- n
			}
		}
	}()
	if n := <-listed; n != 100000 {
		t.Fatalf("listed %d bans, want 100000", n)
	}
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")
}

// BenchmarkList100k lists 100,000 active bans through the control socket,
// as `banctl list --json` does, and reports the time per listing.
//
//	go test -run '^$' -bench List100k -benchtime 5x ./pkg/daemon
func BenchmarkList100k(b *testing.B) {
	e := newEnv(b)
	fillStore(b, e, 100000)
	stop := e.start()
	defer stop()
	c := e.client()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		if err := c.List(context.Background(), "", "", func(*control.Ban, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 100000 {
			b.Fatalf("listed %d", n)
		}
	}
}
