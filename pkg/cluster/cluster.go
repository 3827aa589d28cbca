// Package cluster shares bans between banwatchd nodes through PostgreSQL.
//
// Every node keeps its own SQLite store and nftables table. What a node
// decides (a ban, an admin's unban, with share_strikes its strikes) it also
// appends to one table in PostgreSQL, banwatch_changes, as a Change; every
// node reads the others' changes in the order they were committed and
// applies them locally. A NOTIFY on the channel "banwatch" after each
// append wakes the readers at once; they also poll, so a lost notification
// only delays a change.
//
// Order: appends take a transaction-level advisory lock, so that changes
// are numbered (Seq) in the order they commit, and a reader that has seen
// Seq n has seen every change before it. A node remembers the last Seq it
// applied and asks for the changes after it.
//
// Duplicates: a node numbers its own changes (Source, NodeSeq); appending
// a change already stored does nothing, so a node that sends a batch again
// after an error (or a crash before it learnt that the batch was stored)
// never stores it twice.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kind is what a change does.
type Kind string

// The kinds of change.
const (
	KindBan    Kind = "ban"    // a ban made on Node
	KindUnban  Kind = "unban"  // an admin lifted the bans of Prefix in Jail on Node
	KindStrike Kind = "strike" // an event counted against Prefix's address in Jail (share_strikes)
)

// Channel is the NOTIFY channel appends signal on; the payload is the
// appending node's name.
const Channel = "banwatch"

// Change is one entry of the cluster's log.
type Change struct {
	Seq     int64  // the cluster's number, in commit order; 0 before it is stored
	Node    string // the node that made it
	Source  string // the node's store (a new store numbers from 1 again)
	NodeSeq int64  // the node's number for it, unique per Source

	Kind   Kind
	Jail   string
	Prefix netip.Prefix // a single address is a /32 or /128
	// At is a ban's start, an unban's time, or a strike's time.
	At time.Time

	// A ban's fields.
	End        time.Time
	Origin     string
	Reason     string
	Strikes    int
	FirstEvent time.Time
	LastEvent  time.Time
	Evidence   []string

	By string // an unban: who lifted it

	// A strike's fields.
	Event  string
	Weight int
}

// Options configure a Client.
type Options struct {
	// DSN is the connection string: a URL or keyword/value pairs.
	DSN string
	// Node is this node's name; Since leaves its own changes out.
	Node string
	// PasswordFile, when set, holds the password (its first line).
	PasswordFile string
	// CAFile, CertFile and KeyFile set TLS: the server's CA, and a client
	// certificate with its key. They override sslrootcert, sslcert and
	// sslkey in DSN.
	CAFile, CertFile, KeyFile string
	// Log receives the client's messages; nil discards them.
	Log *slog.Logger
}

// Client talks to the cluster's PostgreSQL. Its methods are safe for
// concurrent use.
type Client struct {
	pool *pgxpool.Pool
	node string
	log  *slog.Logger
}

// Connect parses o, connects and brings the schema up to date (the first
// node to connect applies the migrations; the others wait for it). The
// pool connects lazily after that: a Client outlives PostgreSQL's outages.
func Connect(ctx context.Context, o Options) (*Client, error) {
	cfg, err := poolConfig(o)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Client{pool: pool, node: o.Node, log: log}
	if err := c.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return c, nil
}

// poolConfig builds the pool's configuration from o.
func poolConfig(o Options) (*pgxpool.Config, error) {
	if o.Node == "" {
		return nil, errors.New("cluster: no node name")
	}
	dsn, err := withTLS(o.DSN, o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("cluster: postgres: %w", redact(err, o.DSN))
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: password_file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		cfg.ConnConfig.Password = strings.TrimRight(pw, "\r")
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "banwatchd " + o.Node
	return cfg, nil
}

// withTLS adds the TLS files to a connection string.
func withTLS(dsn, ca, cert, key string) (string, error) {
	params := [][2]string{{"sslrootcert", ca}, {"sslcert", cert}, {"sslkey", key}}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("cluster: postgres: not a valid URL")
		}
		q := u.Query()
		for _, p := range params {
			if p[1] != "" {
				q.Set(p[0], p[1])
			}
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	for _, p := range params {
		if p[1] != "" {
			dsn += " " + p[0] + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(p[1]) + "'"
		}
	}
	return dsn, nil
}

// redact replaces the password of dsn in err's text.
func redact(err error, dsn string) error {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	if i := strings.Index(dsn, "password="); i >= 0 {
		pw := dsn[i+len("password="):]
		if j := strings.IndexByte(pw, ' '); j >= 0 {
			pw = pw[:j]
		}
		if pw = strings.Trim(pw, "'"); pw != "" {
			msg = strings.ReplaceAll(msg, pw, "***")
		}
	}
	return errors.New(msg)
}

// Close closes the pool.
func (c *Client) Close() { c.pool.Close() }

// Node is this node's name.
func (c *Client) Node() string { return c.node }

// Ping checks that PostgreSQL answers.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.pool.Ping(ctx); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Lock keys of pg_advisory_lock: one for migrations, one that orders
// appends.
const (
	lockMigrate = 0x62616e7761746368 // "banwatch"
	lockAppend  = lockMigrate + 1
	lockPrune   = lockMigrate + 2
)

// changeCols are the columns Since and Active read, in scanChange's order.
const changeCols = `seq, node, source, node_seq, kind, jail, prefix, at, end_at, origin, reason, strikes,
	first_at, last_at, evidence, by_whom, event, weight`

// Append stores changes (this node's, in order) in one transaction and
// notifies the other nodes. Changes already stored (by Source and NodeSeq,
// or a ban by Source, Jail, Prefix and At) are skipped. A change with
// NodeSeq 0 is a ban sent as it was made, before the store numbered it:
// stored without a number; its later copy with the number (and evidence)
// completes it. It returns how many were new.
func (c *Client) Append(ctx context.Context, changes []Change) (int, error) {
	if len(changes) == 0 {
		return 0, nil
	}
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return 0, fmt.Errorf("cluster: append: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// One statement for the whole batch: a column an array.
	changes = oneCopy(changes)
	n := len(changes)
	var (
		sources, kinds, jails, origins, reasons, bys, events = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs              = make([]int64, n)
		strikes, weights  = make([]int32, n), make([]int32, n)
		prefixes          = make([]netip.Prefix, n)
		ats               = make([]time.Time, n)
		ends, firsts, las = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		evidence          = make([]*string, n)
	)
	for i := range changes {
		ch := &changes[i]
		if ch.Kind == KindBan {
			ev := ch.Evidence
			if ev == nil {
				ev = []string{}
			}
			b, err := json.Marshal(ev)
			if err != nil {
				return 0, fmt.Errorf("cluster: append: %w", err)
			}
			s := string(b)
			evidence[i] = &s
		}
		sources[i], seqs[i], kinds[i], jails[i], prefixes[i], ats[i] = ch.Source, ch.NodeSeq, string(ch.Kind), ch.Jail, ch.Prefix.Masked(), ch.At.UTC()
		ends[i], firsts[i], las[i] = nullTime(ch.End), nullTime(ch.FirstEvent), nullTime(ch.LastEvent)
		origins[i], reasons[i], strikes[i], bys[i], events[i], weights[i] = ch.Origin, ch.Reason, int32(ch.Strikes), ch.By, ch.Event, int32(ch.Weight)
	}
	// The evidence of bans from the outbox (numbered): a ban sent as it
	// was made had none, and the row it made stays as it is. Written
	// before the lock, which orders the changes only.
	if err := c.appendEvidence(ctx, tx, changes); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockAppend)); err != nil {
		return 0, fmt.Errorf("cluster: append: %w", err)
	}
	// A ban is one row by node, store, jail, prefix and start; a change
	// with a number already stored (a batch sent again) is skipped.
	tag, err := tx.Exec(ctx, `INSERT INTO banwatch_changes (node, source, node_seq, kind, jail, prefix, at, end_at, origin, reason,
	strikes, first_at, last_at, evidence, by_whom, event, weight)
SELECT $1, s, nullif(q, 0), k, j, p, a, e, o, r, n, f, l, v::jsonb, b, ev, w
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::cidr[], $7::timestamptz[], $8::timestamptz[],
	$9::text[], $10::text[], $11::int[], $12::timestamptz[], $13::timestamptz[], $14::text[], $15::text[], $16::text[], $17::int[])
	WITH ORDINALITY AS t (s, q, k, j, p, a, e, o, r, n, f, l, v, b, ev, w, i)
ORDER BY i
ON CONFLICT DO NOTHING`,
		c.node, sources, seqs, kinds, jails, prefixes, ats, ends, origins, reasons, strikes, firsts, las, evidence, bys, events, weights)
	if err != nil {
		return 0, fmt.Errorf("cluster: append: %w", err)
	}
	added := int(tag.RowsAffected())
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, c.node); err != nil {
		return 0, fmt.Errorf("cluster: append: notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("cluster: append: commit: %w", err)
	}
	return added, nil
}

// appendEvidence stores the evidence of changes' numbered bans that
// have some, in banwatch_evidence.
func (c *Client) appendEvidence(ctx context.Context, tx pgx.Tx, changes []Change) error {
	var sources, jails, lines []string
	var prefixes []netip.Prefix
	var ats []time.Time
	for i := range changes {
		ch := &changes[i]
		if ch.Kind != KindBan || ch.NodeSeq == 0 || len(ch.Evidence) == 0 {
			continue
		}
		b, err := json.Marshal(ch.Evidence)
		if err != nil {
			return fmt.Errorf("cluster: append: %w", err)
		}
		sources, jails, lines = append(sources, ch.Source), append(jails, ch.Jail), append(lines, string(b))
		prefixes, ats = append(prefixes, ch.Prefix.Masked()), append(ats, ch.At.UTC())
	}
	if len(lines) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO banwatch_evidence (node, source, jail, prefix, at, lines)
SELECT $1, s, j, p, a, l::jsonb FROM unnest($2::text[], $3::text[], $4::cidr[], $5::timestamptz[], $6::text[]) AS t (s, j, p, a, l)
ON CONFLICT DO NOTHING`, c.node, sources, jails, prefixes, ats, lines); err != nil {
		return fmt.Errorf("cluster: append: evidence: %w", err)
	}
	return nil
}

// banKey is what makes a ban one row in the cluster (PostgreSQL keeps
// microseconds).
type banKey struct {
	source, jail string
	prefix       netip.Prefix
	at           int64
}

// oneCopy drops the copies of a ban that changes holds more than once, as
// the insert may touch a row once: the first numbered one stays, or the
// first one when none is numbered.
func oneCopy(changes []Change) []Change {
	key := func(ch *Change) banKey {
		return banKey{ch.Source, ch.Jail, ch.Prefix.Masked(), ch.At.UnixMicro()}
	}
	keep := map[banKey]int{} // the copy kept: its index
	dup := false
	for i := range changes {
		ch := &changes[i]
		if ch.Kind != KindBan {
			continue
		}
		k := key(ch)
		j, seen := keep[k]
		switch {
		case !seen:
			keep[k] = i
		case changes[j].NodeSeq == 0 && ch.NodeSeq != 0:
			keep[k], dup = i, true
		default:
			dup = true
		}
	}
	if !dup {
		return changes
	}
	out := make([]Change, 0, len(changes))
	for i := range changes {
		if ch := &changes[i]; ch.Kind != KindBan || keep[key(ch)] == i {
			out = append(out, *ch)
		}
	}
	return out
}

// nullTime is nil for the zero time, else t in UTC.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Since returns the other nodes' changes after seq, in order, at most
// limit; strikes only if strikes is true.
func (c *Client) Since(ctx context.Context, seq int64, limit int, strikes bool) ([]Change, error) {
	kinds := []string{string(KindBan), string(KindUnban)}
	if strikes {
		kinds = append(kinds, string(KindStrike))
	}
	rows, err := c.pool.Query(ctx, `SELECT `+changeCols+` FROM banwatch_changes
WHERE seq > $1 AND node <> $2 AND kind = ANY($3) ORDER BY seq LIMIT $4`, seq, c.node, kinds, limit)
	if err != nil {
		return nil, fmt.Errorf("cluster: since: %w", err)
	}
	out, err := scanChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("cluster: since: %w", err)
	}
	return out, nil
}

// LastSent returns the largest number this node's store source gave a
// change the cluster holds (0 if none): a store restored from a backup
// must number its next changes above it.
func (c *Client) LastSent(ctx context.Context, source string) (int64, error) {
	var seq int64
	if err := c.pool.QueryRow(ctx, `SELECT coalesce(max(node_seq), 0) FROM banwatch_changes WHERE node = $1 AND source = $2`,
		c.node, source).Scan(&seq); err != nil {
		return 0, fmt.Errorf("cluster: last sent: %w", err)
	}
	return seq, nil
}

// pruneChunk is how many rows one statement of Prune deletes at most (a
// variable for tests).
var pruneChunk = 10_000

// Prune deletes what the cluster no longer needs, a chunk to a
// transaction: strikes from before strikesBefore; bans that ended (by
// their end; an unban may have ended them sooner) before historyBefore,
// with their evidence; and unbans from before historyBefore once no ban
// they could have ended is left. A zero time deletes nothing of its kind.
// One node prunes at a time: when another holds the prune lock, Prune
// returns at once. Numbers of changes are never reused (seq only grows),
// so the nodes' cursors stay valid; a node's LastSent may fall with its
// deleted changes, and numbers below it are then free to take again.
// It returns the number of changes deleted.
func (c *Client) Prune(ctx context.Context, strikesBefore, historyBefore time.Time) (int64, error) {
	steps := []struct {
		what   string
		before time.Time
		q      string
	}{
		{"strikes", strikesBefore, `WITH gone AS (
	DELETE FROM banwatch_changes WHERE seq IN (
		SELECT seq FROM banwatch_changes WHERE kind = 'strike' AND at < $1 LIMIT $2)
	RETURNING 1)
SELECT count(*) FROM gone`},
		{"bans", historyBefore, `WITH gone AS (
	DELETE FROM banwatch_changes WHERE seq IN (
		SELECT seq FROM banwatch_changes WHERE kind = 'ban' AND end_at < $1 LIMIT $2)
	RETURNING node, source, jail, prefix, at),
ev AS (
	DELETE FROM banwatch_evidence e USING gone g
	WHERE e.node = g.node AND e.source = g.source AND e.jail = g.jail AND e.prefix = g.prefix AND e.at = g.at)
SELECT count(*) FROM gone`},
		// Active takes a ban for ended by a later unban of its prefix and
		// jail: an unban goes only once no earlier ban of those is left.
		{"unbans", historyBefore, `WITH gone AS (
	DELETE FROM banwatch_changes WHERE seq IN (
		SELECT u.seq FROM banwatch_changes u
		WHERE u.kind = 'unban' AND u.at < $1
		AND NOT EXISTS (SELECT 1 FROM banwatch_changes b
			WHERE b.kind = 'ban' AND b.prefix = u.prefix AND b.jail = u.jail AND b.seq < u.seq)
		LIMIT $2)
	RETURNING 1)
SELECT count(*) FROM gone`},
	}
	var total int64
	for _, st := range steps {
		if st.before.IsZero() {
			continue
		}
		for {
			n, locked, err := c.pruneChunk(ctx, st.q, st.before.UTC())
			if err != nil {
				return total, fmt.Errorf("cluster: prune %s: %w", st.what, err)
			}
			if !locked {
				return total, nil // another node is pruning
			}
			total += n
			if n < int64(pruneChunk) {
				break
			}
		}
	}
	return total, nil
}

// pruneChunk runs one of Prune's statements, each of which deletes and
// returns how many changes it deleted, in a transaction holding the prune
// lock; locked is false when another node holds it.
func (c *Client) pruneChunk(ctx context.Context, q string, before time.Time) (n int64, locked bool, err error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(lockPrune)).Scan(&locked); err != nil || !locked {
		return 0, false, err
	}
	if err := tx.QueryRow(ctx, q, before, pruneChunk).Scan(&n); err != nil {
		return 0, true, err
	}
	return n, true, tx.Commit(ctx)
}

// Last returns the number of the last change stored (0 if none).
func (c *Client) Last(ctx context.Context) (int64, error) {
	var seq int64
	if err := c.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM banwatch_changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("cluster: last: %w", err)
	}
	return seq, nil
}

// Active returns the other nodes' bans that are in force at now (not
// ended, no later unban of their prefix and jail), oldest first, with the
// number of the last change stored when they were read: the changes after
// it are what a node that loaded these must apply next.
func (c *Client) Active(ctx context.Context, now time.Time) ([]Change, int64, error) {
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: active: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var last int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM banwatch_changes`).Scan(&last); err != nil {
		return nil, 0, fmt.Errorf("cluster: active: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+changeCols+` FROM banwatch_changes b
WHERE b.kind = 'ban' AND b.end_at > $1 AND b.node <> $2
AND NOT EXISTS (SELECT 1 FROM banwatch_changes u
	WHERE u.kind = 'unban' AND u.prefix = b.prefix AND u.jail = b.jail AND u.seq > b.seq AND u.at >= b.at)
ORDER BY b.seq`, now.UTC(), c.node)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: active: %w", err)
	}
	out, err := scanChanges(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: active: %w", err)
	}
	return out, last, nil
}

// scanChanges reads rows of changeCols and closes them.
func scanChanges(rows pgx.Rows) ([]Change, error) {
	defer rows.Close()
	var out []Change
	for rows.Next() {
		ch, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// scanChange reads the current row: changeCols, then into extra.
func scanChange(rows pgx.Rows, extra ...any) (Change, error) {
	var ch Change
	var kind string
	var end, first, last *time.Time
	var evidence []byte
	var nodeSeq *int64 // NULL for a ban sent as it was made
	dest := append([]any{&ch.Seq, &ch.Node, &ch.Source, &nodeSeq, &kind, &ch.Jail, &ch.Prefix, &ch.At, &end,
		&ch.Origin, &ch.Reason, &ch.Strikes, &first, &last, &evidence, &ch.By, &ch.Event, &ch.Weight}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return ch, err
	}
	ch.Kind = Kind(kind)
	if nodeSeq != nil {
		ch.NodeSeq = *nodeSeq
	}
	ch.At = ch.At.UTC()
	for _, p := range []struct {
		src *time.Time
		dst *time.Time
	}{{end, &ch.End}, {first, &ch.FirstEvent}, {last, &ch.LastEvent}} {
		if p.src != nil {
			*p.dst = p.src.UTC()
		}
	}
	if len(evidence) > 0 {
		if err := json.Unmarshal(evidence, &ch.Evidence); err != nil {
			return ch, fmt.Errorf("change %d: evidence: %w", ch.Seq, err)
		}
	}
	return ch, nil
}

// Listen calls wake after each change another node appends, until ctx is
// done; then it returns nil. It keeps its own connection, and reconnects
// (every second at first, then up to every 5 s) when it is lost; it calls
// wake after each (re)connection too, since notifications sent meanwhile
// are lost. connected, when not nil, is told each time the connection
// comes or goes.
func (c *Client) Listen(ctx context.Context, wake func(), connected func(bool)) error {
	delay := time.Second
	for {
		up, err := c.listenOnce(ctx, wake, connected)
		if ctx.Err() != nil {
			return nil
		}
		if up {
			delay = time.Second
		}
		c.log.Warn("cluster: notifications lost; reconnecting", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// listenOnce holds one LISTEN connection until it fails; up reports
// whether it was listening.
func (c *Client) listenOnce(ctx context.Context, wake func(), connected func(bool)) (up bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, c.pool.Config().ConnConfig)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, err
	}
	if connected != nil {
		connected(true)
		defer connected(false)
	}
	wake()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Payload != c.node {
			wake()
		}
	}
}

// HistoryQuery selects bans for History.
type HistoryQuery struct {
	// Prefix, if valid, selects the bans whose prefix overlaps it: inside
	// it, or covering it.
	Prefix netip.Prefix
	Jail   string    // if not "", only this jail's bans
	Since  time.Time // if not zero, only bans that began at or after it
	Limit  int       // if > 0, at most this many (the newest)
}

// Ban is a ban of the cluster's history, as History returns it.
type Ban struct {
	Change
	// Unbanned is set when an unban lifted it (made after it and before
	// its end): when, by whom, on which node.
	Unbanned *Change
}

// History returns the bans every node made, newest first, with the unban
// that lifted each, if one did.
func (c *Client) History(ctx context.Context, q HistoryQuery) ([]Ban, error) {
	where := []string{"b.kind = 'ban'"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Prefix.IsValid() {
		p := arg(q.Prefix.Masked())
		where = append(where, "(b.prefix <<= "+p+" OR b.prefix >>= "+p+")")
	}
	if q.Jail != "" {
		where = append(where, "b.jail = "+arg(q.Jail))
	}
	if !q.Since.IsZero() {
		where = append(where, "b.at >= "+arg(q.Since.UTC()))
	}
	limit := ""
	if q.Limit > 0 {
		limit = " LIMIT " + arg(q.Limit)
	}
	cols := strings.ReplaceAll(changeCols, "\n\t", " ")
	bcols := "b." + strings.ReplaceAll(cols, ", ", ", b.")
	// A ban sent as it was made has its evidence apart.
	bcols = strings.Replace(bcols, "b.evidence", "coalesce(e.lines, b.evidence)", 1)
	rows, err := c.pool.Query(ctx, `SELECT `+bcols+`, u.seq, u.node, u.at, u.by_whom FROM banwatch_changes b
LEFT JOIN banwatch_evidence e ON e.node = b.node AND e.source = b.source AND e.jail = b.jail AND e.prefix = b.prefix AND e.at = b.at
LEFT JOIN LATERAL (SELECT seq, node, at, by_whom FROM banwatch_changes u
	WHERE u.kind = 'unban' AND u.prefix = b.prefix AND u.jail = b.jail AND u.seq > b.seq AND u.at >= b.at AND u.at < b.end_at
	ORDER BY u.seq LIMIT 1) u ON true
WHERE `+strings.Join(where, " AND ")+` ORDER BY b.at DESC, b.seq DESC`+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("cluster: history: %w", err)
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var useq *int64
		var unode, uby *string
		var uat *time.Time
		ch, err := scanChange(rows, &useq, &unode, &uat, &uby)
		if err != nil {
			return nil, fmt.Errorf("cluster: history: %w", err)
		}
		b := Ban{Change: ch}
		if useq != nil {
			b.Unbanned = &Change{Seq: *useq, Node: *unode, Kind: KindUnban, Jail: b.Jail, Prefix: b.Prefix, At: uat.UTC(), By: *uby}
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cluster: history: %w", err)
	}
	return out, nil
}
