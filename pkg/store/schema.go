package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema versions, in order: migrations[i] takes the
// database from PRAGMA user_version i to i+1. Never edit a released
// migration; append a new one.
//
// Conventions:
//   - times are Unix nanoseconds, UTC, as INTEGER; 0 stands for the zero
//     time.Time ("none"); times past 2262 saturate (see toNS);
//   - an address or prefix is stored as a key blob: one family byte (4 or 6)
//     then the 4 or 16 address bytes, masked for a prefix, with the prefix
//     length in a separate bits column (0-32 or 0-128). Blobs compare with
//     memcmp, so within a family they sort like the addresses, and the
//     addresses inside a prefix are one contiguous key range;
//   - bans.ended is ” while a ban is active: partial indexes WHERE ended = ”
//     hold only the active bans, whatever the size of the history.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE bans (
	id       INTEGER PRIMARY KEY,
	addr     BLOB    NOT NULL,  -- family byte + masked address
	bits     INTEGER NOT NULL,
	jail     TEXT    NOT NULL,
	origin   TEXT    NOT NULL,
	start_ns INTEGER NOT NULL,
	end_ns   INTEGER NOT NULL,
	strikes  INTEGER NOT NULL,
	reason   TEXT    NOT NULL,
	first_ns INTEGER NOT NULL,  -- first_event
	last_ns  INTEGER NOT NULL,  -- last_event
	ended    TEXT    NOT NULL DEFAULT '',  -- '' (active), expired, unbanned, replaced
	ended_at INTEGER NOT NULL DEFAULT 0,
	ended_by TEXT    NOT NULL DEFAULT '',
	CHECK (ended IN ('', 'expired', 'unbanned', 'replaced')),
	CHECK ((length(addr) = 5 AND substr(addr, 1, 1) = x'04' AND bits BETWEEN 0 AND 32)
	    OR (length(addr) = 17 AND substr(addr, 1, 1) = x'06' AND bits BETWEEN 0 AND 128))
);
-- At most one active ban per prefix and jail; also the lookup for a
-- replacing ban and for Unban.
CREATE UNIQUE INDEX bans_active_key ON bans (addr, bits, jail) WHERE ended = '';
-- Active, Expire and CountActive (covering for the count).
CREATE INDEX bans_active_end ON bans (end_ns, jail) WHERE ended = '';
-- History by prefix: a key range for the bans inside a prefix, point
-- lookups for the prefixes covering it.
CREATE INDEX bans_addr ON bans (addr, bits);
-- History by jail, and newest first without a jail.
CREATE INDEX bans_jail_start ON bans (jail, start_ns);
CREATE INDEX bans_start ON bans (start_ns);
-- Prune of the ended bans.
CREATE INDEX bans_ended_at ON bans (ended_at) WHERE ended <> '';

-- The evidence of a ban: a JSON array of log lines, oldest first. Kept out
-- of bans so that loading the active bans never reads it.
CREATE TABLE evidence (
	ban_id INTEGER PRIMARY KEY REFERENCES bans (id) ON DELETE CASCADE,
	lines  TEXT NOT NULL
);

CREATE TABLE strikes (
	id      INTEGER PRIMARY KEY,
	jail    TEXT    NOT NULL,
	addr    BLOB    NOT NULL,  -- family byte + address
	time_ns INTEGER NOT NULL,
	kind    TEXT    NOT NULL,
	weight  INTEGER NOT NULL,
	line    TEXT    NOT NULL
);
CREATE INDEX strikes_time ON strikes (time_ns);
-- A ban's evidence: the lines of its address's strikes in its jail.
CREATE INDEX strikes_addr ON strikes (addr, jail, time_ns);

CREATE TABLE positions (
	path        TEXT PRIMARY KEY,
	inode       INTEGER NOT NULL,  -- uint64 stored as its int64 bits
	offset      INTEGER NOT NULL,
	fingerprint INTEGER NOT NULL   -- uint64 stored as its int64 bits
) WITHOUT ROWID;
`,
	// 2: journal sources keep the journal's cursor as their position.
	`ALTER TABLE positions ADD COLUMN cursor TEXT NOT NULL DEFAULT '';`,
	// 3: cluster mode. The node a ban or strike came from ('' for this
	// one); the changes this node has still to send to the cluster, in
	// order (AUTOINCREMENT: a number is never used twice, since the
	// cluster drops a change whose number it has seen); the cluster's
	// state: this store's random name (source) and the number of the
	// last change applied from other nodes (cursor).
	`
ALTER TABLE bans ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE strikes ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE TABLE outbox (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	kind   TEXT    NOT NULL CHECK (kind IN ('ban', 'unban', 'strike')),
	ban_id INTEGER NOT NULL DEFAULT 0,  -- a ban: its row, read when sent
	jail   TEXT    NOT NULL DEFAULT '',
	addr   BLOB,                        -- an unban, a strike
	bits   INTEGER NOT NULL DEFAULT 0,
	at_ns  INTEGER NOT NULL DEFAULT 0,
	by     TEXT    NOT NULL DEFAULT '',
	event  TEXT    NOT NULL DEFAULT '',
	weight INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE cluster_state (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO cluster_state (key, value) VALUES ('source', lower(hex(randomblob(8)))), ('cursor', '0');
`,
	// 4: the history's pages and charts. Indexes for pages of history in
	// time order (see below). Per-hour counts, for the charts: the bans
	// begun per hour and jail, kept by the two ways a ban enters the table
	// (Commit and ApplyRemote; a trigger made each insert some 2.5 times
	// dearer); the events (strikes) per hour and kind, kept by Commit,
	// since the strikes themselves are pruned after the jails' find_time.
	// An hour is start_ns (time_ns) / 3600e9: whole hours since the
	// epoch, UTC. Both are backfilled from what the tables hold.
	`
CREATE TABLE ban_hours (
	hour INTEGER NOT NULL,
	jail TEXT    NOT NULL,
	n    INTEGER NOT NULL,
	PRIMARY KEY (hour, jail)
) WITHOUT ROWID;
CREATE TABLE event_hours (
	hour INTEGER NOT NULL,
	kind TEXT    NOT NULL,
	n    INTEGER NOT NULL,
	PRIMARY KEY (hour, kind)
) WITHOUT ROWID;
-- The history's pages (HistoryPage), fast on a million bans: the bans
-- of a prefix in time order from the address index alone; the ended
-- bans by how and when; the active ones by when (a ban that ends moves
-- from the last index to the one before).
DROP INDEX bans_addr;
CREATE INDEX bans_addr ON bans (addr, bits, start_ns);
CREATE INDEX bans_ended_start ON bans (ended, start_ns) WHERE ended <> '';
CREATE INDEX bans_active_start ON bans (start_ns) WHERE ended = '';
INSERT INTO ban_hours (hour, jail, n)
	SELECT start_ns / 3600000000000, jail, count(*) FROM bans GROUP BY 1, 2;
INSERT INTO event_hours (hour, kind, n)
	SELECT time_ns / 3600000000000, kind, count(*) FROM strikes GROUP BY 1, 2;
`,
}

// SchemaVersion is the schema version this package writes and reads
// (PRAGMA user_version): len(migrations), checked by the tests.
const SchemaVersion = 4

// migrate brings the database on db up to SchemaVersion in one transaction.
// It refuses a database of a newer version, written by a newer banwatch.
func migrate(ctx context.Context, db *sql.DB) (from int, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&from); err != nil {
		return 0, fmt.Errorf("store: migrate: read user_version: %w", err)
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("store: database schema version %d is newer than this program's %d", from, SchemaVersion)
	}
	if from < 0 {
		return from, fmt.Errorf("store: invalid database schema version %d", from)
	}
	if from == SchemaVersion {
		return from, tx.Rollback()
	}
	for v := from; v < SchemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return from, fmt.Errorf("store: migrate to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; the value is our own constant.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, SchemaVersion)); err != nil {
		return from, fmt.Errorf("store: migrate: set user_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return from, fmt.Errorf("store: migrate: commit: %w", err)
	}
	return from, nil
}
