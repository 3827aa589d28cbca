package cluster

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema versions, in order: migrations[i] takes the
// database from version i to i+1 (banwatch_schema.version). Never edit a
// released migration; append a new one.
var migrations = []string{
	// 1: the log of changes.
	`
CREATE TABLE banwatch_changes (
	seq      bigserial   PRIMARY KEY,
	node     text        NOT NULL,
	source   text        NOT NULL,
	node_seq bigint      NOT NULL,
	kind     text        NOT NULL CHECK (kind IN ('ban', 'unban', 'strike')),
	jail     text        NOT NULL,
	prefix   cidr        NOT NULL,
	at       timestamptz NOT NULL,
	end_at   timestamptz,
	origin   text        NOT NULL DEFAULT '',
	reason   text        NOT NULL DEFAULT '',
	strikes  integer     NOT NULL DEFAULT 0,
	first_at timestamptz,
	last_at  timestamptz,
	evidence jsonb,
	by_whom  text        NOT NULL DEFAULT '',
	event    text        NOT NULL DEFAULT '',
	weight   integer     NOT NULL DEFAULT 0,
	stored   timestamptz NOT NULL DEFAULT now(),
	UNIQUE (node, source, node_seq),
	CHECK (kind <> 'ban' OR end_at IS NOT NULL)
);
-- Active: the bans not yet ended.
CREATE INDEX banwatch_changes_ban_end ON banwatch_changes (end_at) WHERE kind = 'ban';
-- Active's look-up of a later unban; history by prefix.
CREATE INDEX banwatch_changes_key ON banwatch_changes (prefix, jail, seq);
-- History, newest first.
CREATE INDEX banwatch_changes_ban_at ON banwatch_changes (at) WHERE kind = 'ban';
`,
	// 2: a node sends its bans as it makes them, before its store holds
	// them (node_seq NULL, no evidence yet), and again from its outbox: a
	// ban is one row by its node, store, jail, prefix and start, so the
	// second copy is dropped, and its evidence goes to banwatch_evidence
	// (kept apart so that the first row is never rewritten). Copies
	// stored twice before (none should be) keep the first.
	`
ALTER TABLE banwatch_changes ALTER COLUMN node_seq DROP NOT NULL;
DELETE FROM banwatch_changes a USING banwatch_changes b
WHERE a.kind = 'ban' AND b.kind = 'ban' AND a.node = b.node AND a.source = b.source AND a.jail = b.jail
	AND a.prefix = b.prefix AND a.at = b.at AND a.seq > b.seq;
CREATE UNIQUE INDEX banwatch_changes_ban ON banwatch_changes (node, source, jail, prefix, at) WHERE kind = 'ban';
CREATE TABLE banwatch_evidence (
	node   text        NOT NULL,
	source text        NOT NULL,
	jail   text        NOT NULL,
	prefix cidr        NOT NULL,
	at     timestamptz NOT NULL,
	lines  jsonb       NOT NULL,
	PRIMARY KEY (node, source, jail, prefix, at)
);
`,
	// 3: Prune finds old strikes and unbans by time (old bans by end_at
	// through banwatch_changes_ban_end).
	`
CREATE INDEX banwatch_changes_strike_at ON banwatch_changes (at) WHERE kind = 'strike';
CREATE INDEX banwatch_changes_unban_at ON banwatch_changes (at) WHERE kind = 'unban';
`,
}

// SchemaVersion is the schema version this package writes and reads.
const SchemaVersion = 3

// migrate brings the schema up to SchemaVersion under a session advisory
// lock, so that nodes starting together apply each migration once. It
// refuses a schema newer than this program's.
func (c *Client) migrate(ctx context.Context) error {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockMigrate)); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(lockMigrate))
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS banwatch_schema (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	var from int
	err = conn.QueryRow(ctx, `SELECT version FROM banwatch_schema`).Scan(&from)
	switch {
	case err == pgx.ErrNoRows:
		from = 0
	case err != nil:
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	if from > SchemaVersion {
		return fmt.Errorf("cluster: the cluster's schema version %d is newer than this program's %d: upgrade banwatch on this node", from, SchemaVersion)
	}
	if from == SchemaVersion {
		return nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for v := from; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("cluster: migrate to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM banwatch_schema`); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO banwatch_schema (version) VALUES ($1)`, SchemaVersion); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cluster: migrate: commit: %w", err)
	}
	c.log.Info("cluster: schema migrated", "from", from, "to", SchemaVersion)
	return nil
}
