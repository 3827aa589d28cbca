// Package store is banwatch's SQLite database: the source of truth for bans,
// the strikes that can still count, and the read position of every log.
//
// Everything the daemon learns from a stretch of log is committed at once
// (Commit of a Batch, one transaction), so that after a crash the read
// positions, the strikes and the bans never disagree: the daemon resumes
// reading exactly after what the store holds.
//
// # Durability
//
// The database runs in WAL mode with synchronous=NORMAL. In WAL mode that
// never corrupts the database: a commit is appended to the WAL and the WAL
// is synced at every checkpoint, so a power loss (not a crash of the
// process, which loses nothing) can only roll back the last transactions,
// whole. That is safe for banwatch because positions, strikes and bans are
// committed together: a lost tail rolls the read positions back with the
// bans, and on restart the daemon reads the same log lines again and
// decides the same bans again. Only admin actions (banctl ban/unban) of the
// last moments before a power loss can be lost, and the admin sees that.
// FULL would cost an fsync per Commit, on the hot path of every batch.
//
// # Connections
//
// The store keeps two pools on the same file: a writer with one connection
// (SetMaxOpenConns(1), transactions BEGIN IMMEDIATE), so that writes are
// serialised in Go rather than racing for SQLite's lock and failing with
// SQLITE_BUSY, and a small read-only pool, so that readers (banctl
// queries, the start-up load) run on WAL snapshots concurrently with the
// writer and never wait for it.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// process (an sqlite3 shell, a second banwatch) before failing.
const busyTimeoutMS = 10000

// readConns is the size of the read pool.
const readConns = 4

// Page caches, in KiB per connection (SQLite's cache_size, negative). The
// writer's is large: a commit inserts into indexes over every strike and
// ban, at addresses all over them. The readers' caches are small: they
// scan (the start-up load, history) rather than come back to pages, and
// an idle reader is closed after readIdle, its cache with it, so that a
// start-up load of millions of bans leaves no cache behind.
const (
	writeCacheKiB = 16384
	readCacheKiB  = 2048
	readIdle      = time.Minute
)

// chunk is how many rows Expire and Prune change per transaction, so that a
// mass expiry does not hold the writer for seconds while batches wait.
const chunk = 10000

// Store is banwatch's database. Its methods are safe for concurrent use.
type Store struct {
	path   string
	logger *slog.Logger
	w      *sql.DB // one connection: every write
	r      *sql.DB // read-only pool

	// Hot-path statements, prepared once.
	upsertPosition *sql.Stmt // on w
	insertStrike   *sql.Stmt // on w
	addEventHour   *sql.Stmt // on w: Commit's events per hour and kind
	addBanHour     *sql.Stmt // on w: the bans per hour and jail
	endActive      *sql.Stmt // on w: end the active ban a new one replaces
	insertBan      *sql.Stmt // on w
	insertNewBan   *sql.Stmt // on w: an active ban, unless its prefix and jail have one
	insertEvidence *sql.Stmt // on w
	insertOutbox   *sql.Stmt // on w: a change for the cluster
	activeEnd      *sql.Stmt // on w: the end of the active ban of a prefix in a jail
	strikeLines    *sql.Stmt // on w: a ban's evidence from its strikes
	expireChunk    *sql.Stmt // on w
	countActive    *sql.Stmt // on r
	selectStrikes  *sql.Stmt // on r
	selectPos      *sql.Stmt // on r

	// outbox says which changes Commit and Unban also write to the
	// outbox for the cluster (SetOutbox).
	outbox atomic.Uint32

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database at path and migrates it.
//
// A missing directory is created with mode 0700; the database file is
// created (or set) to mode 0600, and SQLite gives its -wal and -shm files
// the same mode. A nil logger discards.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("store: %q: need a file path", path)
	}
	if strings.ContainsRune(path, '?') {
		// go-sqlite3 takes what follows a '?' as its options.
		return nil, fmt.Errorf("store: %q: a database path cannot contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	opts := url.Values{}
	opts.Set("_journal_mode", "WAL")
	opts.Set("_synchronous", "NORMAL") // see the package doc, Durability
	opts.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	opts.Set("_foreign_keys", "on")
	// SQLite's multi-thread mode (SQLITE_OPEN_NOMUTEX): database/sql never
	// uses one connection from two goroutines at once, so SQLite's own
	// per-call connection mutex (serialized mode) is pure cost, 10% of
	// loading the active bans. sqlite3_interrupt, which go-sqlite3 calls
	// from another goroutine on a cancelled context, is safe in this mode.
	opts.Set("_mutex", "no")
	wopts := url.Values{}
	for k, v := range opts {
		wopts[k] = v
	}
	wopts.Set("_txlock", "immediate")
	wopts.Set("_cache_size", fmt.Sprint(-writeCacheKiB))
	ropts := opts
	ropts.Set("_query_only", "on")
	ropts.Set("_cache_size", fmt.Sprint(-readCacheKiB))

	s := &Store{path: path, logger: logger}
	s.w, err = sql.Open("sqlite3", path+"?"+wopts.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	from, err := migrate(ctx, s.w)
	if err != nil {
		_ = s.w.Close()
		return nil, err
	}
	if from != SchemaVersion {
		logger.Info("store: database migrated", "path", path, "from", from, "to", SchemaVersion)
	}

	s.r, err = sql.Open("sqlite3", path+"?"+ropts.Encode())
	if err != nil {
		_ = s.w.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	s.r.SetConnMaxIdleTime(readIdle)

	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	logger.Debug("store: open", "path", path, "schema", SchemaVersion)
	return s, nil
}

// prepare prepares the hot-path statements.
func (s *Store) prepare(ctx context.Context) error {
	stmts := []struct {
		db   *sql.DB
		dst  **sql.Stmt
		text string
	}{
		{s.w, &s.upsertPosition, `
INSERT INTO positions (path, inode, offset, fingerprint, cursor) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (path) DO UPDATE SET inode = excluded.inode, offset = excluded.offset, fingerprint = excluded.fingerprint,
	cursor = excluded.cursor`},
		{s.w, &s.insertStrike, `
INSERT INTO strikes (jail, addr, time_ns, kind, weight, line, node) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{s.w, &s.addEventHour, `
INSERT INTO event_hours (hour, kind, n) VALUES (?, ?, ?) ON CONFLICT (hour, kind) DO UPDATE SET n = n + excluded.n`},
		{s.w, &s.addBanHour, `
INSERT INTO ban_hours (hour, jail, n) VALUES (?, ?, ?) ON CONFLICT (hour, jail) DO UPDATE SET n = n + excluded.n`},
		// A still active ban whose End has passed by the new ban's start
		// expired rather than being replaced.
		{s.w, &s.endActive, `
UPDATE bans SET
	ended    = CASE WHEN end_ns <= ?1 THEN 'expired' ELSE 'replaced' END,
	ended_at = CASE WHEN end_ns <= ?1 THEN end_ns ELSE ?1 END
WHERE addr = ?2 AND bits = ?3 AND jail = ?4 AND ended = ''`},
		{s.w, &s.insertBan, `
INSERT INTO bans (addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns, ended, ended_at, ended_by, node)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// Most new bans are of a prefix without an active ban in their
		// jail: trying the insert first spares them the look-up or the
		// update that a replacement needs (about 5 µs a ban). The
		// conflict target is bans_active_key, so nothing is inserted
		// exactly when the prefix has an active ban in the jail.
		{s.w, &s.insertNewBan, `
INSERT INTO bans (addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns, ended, ended_at, ended_by, node)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, '', ?)
ON CONFLICT (addr, bits, jail) WHERE ended = '' DO NOTHING`},
		{s.w, &s.insertOutbox, `
INSERT INTO outbox (kind, ban_id, jail, addr, bits, at_ns, by, event, weight) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{s.w, &s.insertEvidence, `INSERT INTO evidence (ban_id, lines) VALUES (?, ?)`},
		{s.w, &s.activeEnd, `SELECT end_ns FROM bans WHERE addr = ? AND bits = ? AND jail = ? AND ended = ''`},
		// go-sqlite3 clears a statement's bindings after every run, and
		// SQLite re-prepares a statement whose plan could depend on a
		// bound value at its next run: a bound LIMIT, and an equality
		// on a bound value that some plan it weighed leaves unused
		// (whereLoopOutputAdjust). That cost 114,000 instructions a
		// ban (callgrind, BenchmarkCommitBans). So there is no LIMIT
		// (strikeEvidence stops reading; the index yields the rows
		// newest first), the index is named, and likely() gives the
		// equalities a probability, which keeps the planner from
		// asking for their values. The plan is unchanged: a search of
		// strikes_addr on addr, jail and the time range.
		{s.w, &s.strikeLines, `
SELECT line FROM strikes INDEXED BY strikes_addr WHERE likely(jail = ?) AND likely(addr = ?) AND time_ns >= ? AND time_ns <= ?
ORDER BY time_ns DESC, id DESC`},
		{s.w, &s.expireChunk, `
UPDATE bans SET ended = 'expired', ended_at = end_ns
WHERE id IN (SELECT id FROM bans WHERE ended = '' AND end_ns <= ? LIMIT ` + fmt.Sprint(chunk) + `)`},
		{s.r, &s.countActive, `
SELECT jail, count(*) FROM bans WHERE ended = '' AND end_ns > ? GROUP BY jail`},
		{s.r, &s.selectStrikes, `
SELECT jail, addr, time_ns, kind, weight, line, node FROM strikes WHERE time_ns >= ? ORDER BY time_ns, id`},
		{s.r, &s.selectPos, `SELECT path, inode, offset, fingerprint, cursor FROM positions`},
	}
	for _, st := range stmts {
		p, err := st.db.PrepareContext(ctx, st.text)
		if err != nil {
			return fmt.Errorf("store: prepare %q: %w", strings.Join(strings.Fields(st.text), " "), err)
		}
		*st.dst = p
	}
	return nil
}

// Close closes the database; statements in flight are waited for. Calls
// after the first return its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{
		s.upsertPosition, s.insertStrike, s.addEventHour, s.addBanHour, s.endActive, s.insertBan, s.insertNewBan, s.insertEvidence, s.insertOutbox, s.activeEnd, s.strikeLines,
		s.expireChunk, s.countActive, s.selectStrikes, s.selectPos,
	} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		// Let SQLite update its planner statistics where they are stale;
		// cheap, and recommended before closing a long-lived connection.
		_, err := s.w.Exec(`PRAGMA optimize`)
		errs = append(errs, err, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// rollback rolls tx back unless it has been committed.
func rollback(tx *sql.Tx) {
	_ = tx.Rollback() // sql.ErrTxDone after Commit
}
