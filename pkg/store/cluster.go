package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
)

// What the store writes to its outbox for the cluster (SetOutbox).
const (
	// OutboxBans: this node's bans (Commit of a Ban whose Node is "") and
	// its admins' unbans (Unban, UnbanAll).
	OutboxBans = 1 << iota
	// OutboxStrikes: this node's strikes (Commit of a Strike whose Node is
	// "").
	OutboxStrikes
)

// SetOutbox sets what Commit and Unban also write to the outbox, in the
// same transaction, for the cluster to be sent (Pending): a set of
// OutboxBans and OutboxStrikes, 0 for nothing (the default: no cluster).
func (s *Store) SetOutbox(what int) { s.outbox.Store(uint32(what)) }

// Pending is a change waiting in the outbox.
type Pending struct {
	Seq  int64  // the outbox's number: increasing, never used twice
	Kind string // "ban", "unban" or "strike"
	// Ban is a ban as stored, with its Evidence; for an unban, its Jail,
	// Prefix, EndedAt (when) and EndedBy. A ban whose row was pruned
	// before it was sent has Ban.ID 0 and is to be skipped.
	Ban ban.Ban
	// Strike is a strike (Line left out).
	Strike ban.Strike
}

// Pending returns the first changes of the outbox, at most limit, in order.
func (s *Store) Pending(ctx context.Context, limit int) ([]Pending, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT o.seq, o.kind, o.jail, o.addr, o.bits, o.at_ns, o.by, o.event, o.weight, o.ban_id
FROM outbox o ORDER BY o.seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	var out []Pending
	var banIDs []int64
	for rows.Next() {
		var (
			p            Pending
			jail, by, ev string
			key          []byte
			bits, at, w  int64
			banID        int64
		)
		if err := rows.Scan(&p.Seq, &p.Kind, &jail, &key, &bits, &at, &by, &ev, &w, &banID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: pending: %w", err)
		}
		switch p.Kind {
		case "ban":
			p.Ban.ID = banID
			banIDs = append(banIDs, banID)
		case "unban":
			pr, err := keyPrefix(key, bits)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: pending: change %d: %w", p.Seq, err)
			}
			p.Ban = ban.Ban{Jail: jail, Prefix: pr, Ended: ban.EndUnbanned, EndedAt: fromNS(at), EndedBy: by}
		case "strike":
			a, err := keyAddr(key)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: pending: change %d: %w", p.Seq, err)
			}
			p.Strike = ban.Strike{Jail: jail, Addr: a, Time: fromNS(at), Kind: event.Kind(ev), Weight: int(w)}
		}
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pending: %w", err)
	}
	if len(banIDs) == 0 {
		return out, nil
	}
	// The bans, with their evidence.
	bans := make(map[int64]ban.Ban, len(banIDs))
	for start := 0; start < len(banIDs); start += 500 {
		ids := banIDs[start:min(start+500, len(banIDs))]
		q := `SELECT ` + banCols + ` FROM bans WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `)`
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("store: pending: %w", err)
		}
		var got []ban.Ban
		for rows.Next() {
			b, err := scanBan(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: pending: %w", err)
			}
			got = append(got, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: pending: %w", err)
		}
		if err := loadEvidence(ctx, s.r, got); err != nil {
			return nil, err
		}
		for _, b := range got {
			bans[b.ID] = b
		}
	}
	for i := range out {
		if out[i].Kind == "ban" {
			out[i].Ban = bans[out[i].Ban.ID] // ID 0 when pruned
		}
	}
	return out, nil
}

// PendingCount returns how many changes wait in the outbox.
func (s *Store) PendingCount(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: pending: %w", err)
	}
	return n, nil
}

// Sent removes the outbox's changes up to seq: the cluster has them.
func (s *Store) Sent(ctx context.Context, seq int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM outbox WHERE seq <= ?`, seq); err != nil {
		return fmt.Errorf("store: sent: %w", err)
	}
	return nil
}

// OutboxAfter makes the outbox's next numbers larger than seq: a store
// restored from a backup would otherwise number its new changes as the
// cluster already has them (which drops them as sent twice).
func (s *Store) OutboxAfter(ctx context.Context, seq int64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	defer rollback(tx)
	if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')`); err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'outbox'`, seq); err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: outbox: %w", err)
	}
	return nil
}

// ClusterState returns this store's name in the cluster (random, made
// with the database) and the number of the last cluster change applied.
func (s *Store) ClusterState(ctx context.Context) (source string, cursor int64, err error) {
	var c string
	err = s.r.QueryRowContext(ctx, `SELECT
	(SELECT value FROM cluster_state WHERE key = 'source'),
	(SELECT value FROM cluster_state WHERE key = 'cursor')`).Scan(&source, &c)
	if err != nil {
		return "", 0, fmt.Errorf("store: cluster state: %w", err)
	}
	if cursor, err = strconv.ParseInt(c, 10, 64); err != nil {
		return "", 0, fmt.Errorf("store: cluster state: cursor %q: %w", c, err)
	}
	return source, cursor, nil
}

// sameBan is how much later a remote ban may end than the active one of
// its prefix and jail and still be taken for the same ban.
const sameBan = time.Minute

// Remote is a change another node made, for ApplyRemote: a ban (Ban, its
// Node set) or an unban (Unban).
type Remote struct {
	Ban   *ban.Ban
	Unban *RemoteUnban
}

// RemoteUnban is an unban made on another node.
type RemoteUnban struct {
	Node   string
	Jail   string
	Prefix netip.Prefix
	At     time.Time
	By     string
}

// Applied is what ApplyRemote changed.
type Applied struct {
	Added []*ban.Ban // the bans stored (their ID set)
	// Replaced holds those of Added that replaced a shorter active ban of
	// their prefix and jail (the kernel may still hold the shorter one).
	Replaced []*ban.Ban
	Ended    []ban.Ban // the bans ended by unbans
}

// ApplyRemote stores other nodes' changes, in order, and cursor (the
// number of the last of them) in one transaction.
//
// A ban is stored unless it has ended at now, or the same prefix is banned
// in its jail until as late, or later, or less than sameBan earlier (the
// same ban, received before, or decided here too from the same shared
// strikes); a shorter active ban is replaced. An unban ends the
// active bans of its prefix in its jail that began at or before it (a ban
// made here after the unban was made stands), as ban.EndUnbanned by "BY
// on NODE". Nothing goes to the outbox.
func (s *Store) ApplyRemote(ctx context.Context, changes []Remote, cursor int64, now time.Time) (Applied, error) {
	var out Applied
	for _, c := range changes {
		if c.Ban != nil && !c.Ban.Prefix.IsValid() || c.Unban != nil && !c.Unban.Prefix.IsValid() {
			return out, fmt.Errorf("store: apply remote: invalid prefix")
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return out, fmt.Errorf("store: apply remote: %w", err)
	}
	defer rollback(tx)
	endActive := tx.StmtContext(ctx, s.endActive)
	insBan := tx.StmtContext(ctx, s.insertBan)
	insNew := tx.StmtContext(ctx, s.insertNewBan)
	insEv := tx.StmtContext(ctx, s.insertEvidence)
	activeEnd := tx.StmtContext(ctx, s.activeEnd)
	var hours hourCounts
	for _, c := range changes {
		switch {
		case c.Ban != nil:
			b := c.Ban
			b.Prefix = b.Prefix.Masked()
			if !b.End.After(now) {
				continue
			}
			key := addrKey(b.Prefix.Addr())
			res, err := insertActive(ctx, insNew, b, key, b.Prefix.Bits())
			if err != nil {
				return out, fmt.Errorf("store: apply remote: ban of %v in %q: %w", b.Prefix, b.Jail, err)
			}
			replaced := res == nil
			if replaced {
				// The prefix has an active ban in the jail.
				var end int64
				if err := activeEnd.QueryRowContext(ctx, key, b.Prefix.Bits(), b.Jail).Scan(&end); err != nil {
					return out, fmt.Errorf("store: apply remote: %w", err)
				}
				if end >= toNS(b.End.Add(-sameBan)) {
					continue
				}
				// A shorter active ban: this one replaces it.
				start := b.Start
				if start.After(now) {
					start = now
				}
				if _, err := endActive.ExecContext(ctx, toNS(start), key, b.Prefix.Bits(), b.Jail); err != nil {
					return out, fmt.Errorf("store: apply remote: %w", err)
				}
				res, err = insBan.ExecContext(ctx, key, b.Prefix.Bits(), b.Jail, b.Origin, toNS(b.Start), toNS(b.End), b.Strikes,
					b.Reason, toNS(b.FirstEvent), toNS(b.LastEvent), "", 0, "", b.Node)
				if err != nil {
					return out, fmt.Errorf("store: apply remote: ban of %v in %q: %w", b.Prefix, b.Jail, err)
				}
			}
			if b.ID, err = res.LastInsertId(); err != nil {
				return out, fmt.Errorf("store: apply remote: %w", err)
			}
			if len(b.Evidence) > 0 {
				lines, err := json.Marshal(b.Evidence)
				if err != nil {
					return out, fmt.Errorf("store: apply remote: %w", err)
				}
				if _, err := insEv.ExecContext(ctx, b.ID, string(lines)); err != nil {
					return out, fmt.Errorf("store: apply remote: %w", err)
				}
			}
			out.Added = append(out.Added, b)
			hours.add(b.Start, b.Jail)
			if replaced {
				out.Replaced = append(out.Replaced, b)
			}
		case c.Unban != nil:
			u := c.Unban
			p := u.Prefix.Masked()
			rows, err := tx.QueryContext(ctx, `UPDATE bans SET ended = 'unbanned', ended_at = ?, ended_by = ?
WHERE addr = ? AND bits = ? AND jail = ? AND ended = '' AND start_ns <= ? RETURNING `+banCols,
				toNS(now), u.By+" on "+u.Node, addrKey(p.Addr()), p.Bits(), u.Jail, toNS(u.At))
			if err != nil {
				return out, fmt.Errorf("store: apply remote: unban: %w", err)
			}
			for rows.Next() {
				b, err := scanBan(rows)
				if err != nil {
					rows.Close()
					return out, fmt.Errorf("store: apply remote: unban: %w", err)
				}
				out.Ended = append(out.Ended, b)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return out, fmt.Errorf("store: apply remote: unban: %w", err)
			}
		}
	}
	if err := hours.store(ctx, tx, s.addBanHour); err != nil {
		return out, fmt.Errorf("store: apply remote: bans per hour: %w", err)
	}
	if cursor != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_state SET value = ? WHERE key = 'cursor'`, strconv.FormatInt(cursor, 10)); err != nil {
			return out, fmt.Errorf("store: apply remote: cursor: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Applied{}, fmt.Errorf("store: apply remote: %w", err)
	}
	return out, nil
}
