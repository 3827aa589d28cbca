package daemon

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/firewall/logonly"
)

// TestBansReachFirewallBeforeStore holds the store's write lock from
// another connection, as a long commit or a backup would, and checks that
// a ban still goes to the firewall at once, that the store gets it once
// the lock is gone, and that nothing is banned twice.
func TestBansReachFirewallBeforeStore(t *testing.T) {
	e, db := startWithDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_, _ = conn.ExecContext(ctx, "ROLLBACK")
		}
	}()

	e.appendLines(failures("203.0.113.7", 5)...)
	const added = "prefix=203.0.113.7/32"
	waitLog(t, e, added) // else the ban did not reach the firewall while the store was locked
	// Read through another connection: the store's Open would wait for
	// the lock.
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM bans`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("the store has %d bans although its writer was locked out; the test proves nothing", n)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false
	b := e.waitBanned("203.0.113.7")
	if b.Strikes != 5 || len(b.Evidence) != 5 {
		t.Errorf("stored ban: %d strikes, evidence %q", b.Strikes, b.Evidence)
	}
	if n := strings.Count(e.logBuf.String(), added); n != 1 {
		t.Errorf("the ban went to the firewall %d times, want once:\n%s", n, e.logBuf)
	}
}

// TestStoreRefusalRetried makes the store refuse a batch (a trigger that
// aborts every ban insert, added through another connection): the ban
// still reaches the firewall, and once the store takes bans again the
// refused batch is committed with the next one, evidence and all.
func TestStoreRefusalRetried(t *testing.T) {
	e, db := startWithDB(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON bans BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
		t.Fatal(err)
	}

	e.appendLines(failures("203.0.113.7", 5)...)
	waitLog(t, e, "prefix=203.0.113.7/32")
	waitLog(t, e, "refused by the test")
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM bans`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d bans stored (%v) while the store refused them", n, err)
	}

	if _, err := db.ExecContext(ctx, `DROP TRIGGER refuse`); err != nil {
		t.Fatal(err)
	}
	e.appendLines(failures("203.0.113.8", 5)...)
	for _, a := range []string{"203.0.113.7", "203.0.113.8"} {
		if b := e.waitBanned(a); b.Strikes != 5 || len(b.Evidence) != 5 {
			t.Errorf("%s: stored ban with %d strikes, evidence %q", a, b.Strikes, b.Evidence)
		}
	}
	waitLog(t, e, `msg="working again" component=store`)
	if n := strings.Count(e.logBuf.String(), "prefix=203.0.113.7/32"); n != 1 {
		t.Errorf("203.0.113.7 went to the firewall %d times, want once", n)
	}
}

// startWithDB starts the daemon and opens its database as a second SQLite
// client, the way another program (a backup, an admin's sqlite3) would.
func startWithDB(t *testing.T) (*testEnv, *sql.DB) {
	t.Helper()
	e := newEnv(t)
	t.Cleanup(e.start())
	db, err := sql.Open("sqlite3", filepath.Join(e.cfg.Daemon.StateDir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return e, db
}

// waitLog waits up to 5 s for s in the daemon's log.
func waitLog(t *testing.T, e *testEnv, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.logBuf.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within 5 s:\n%s", s, e.logBuf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowSetupBackend is the log firewall whose Setup takes a while (a busy
// kernel), recording what Reconcile is given and when.
type slowSetupBackend struct {
	firewall.Backend
	delay time.Duration
	mu    sync.Mutex
	got   []firewall.Entry
	at    time.Time
}

func (b *slowSetupBackend) Setup(ctx context.Context, jails []firewall.Jail) error {
	time.Sleep(b.delay)
	return b.Backend.Setup(ctx, jails)
}

func (b *slowSetupBackend) Reconcile(ctx context.Context, entries []firewall.Entry) error {
	b.mu.Lock()
	b.got, b.at = append([]firewall.Entry(nil), entries...), time.Now()
	b.mu.Unlock()
	return b.Backend.Reconcile(ctx, entries)
}

// TestRestoreCountsTimeLeftFromNow restarts the daemon with a firewall
// slow to set up: the restored ban's timeout is the time left when the
// kernel is given it, not when the restart began (which would keep the
// ban in the kernel longer than its end, by the time the start took).
func TestRestoreCountsTimeLeftFromNow(t *testing.T) {
	e := newEnv(t)
	stop := e.start()
	e.appendLines(failures("203.0.113.7", 5)...)
	end := e.waitBanned("203.0.113.7").End
	stop()

	fw := &slowSetupBackend{Backend: logonly.New(slog.New(slog.DiscardHandler)), delay: 3 * time.Second}
	defer e.startWith(Options{Backend: fw})()
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.got) != 1 {
		t.Fatalf("restored %d entries, want 1: %+v", len(fw.got), fw.got)
	}
	if got := fw.got[0].Expires; got.Sub(end).Abs() > time.Second {
		t.Fatalf("restored ending at %v (%v after the firewall got it); the ban ends at %v",
			got, got.Sub(fw.at).Round(time.Millisecond), end)
	}
}
