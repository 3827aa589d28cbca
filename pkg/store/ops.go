package store

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/source"
)

// Batch is what the daemon commits at once, in ONE transaction, so that
// read positions, strikes and bans never disagree after a crash.
type Batch struct {
	// Positions are upserted by Path.
	Positions []source.Position
	// Strikes are appended.
	Strikes []ban.Strike
	// Bans are inserted in order; Commit sets each Ban.ID (and masks its
	// Prefix) once the transaction has committed. A new ban of the same
	// prefix and jail as a still active one ends the old one with
	// ban.EndReplaced at the new one's Start (or ban.EndExpired at its own
	// End, if that had already passed).
	Bans []*ban.Ban
	// EvidenceLimit gives, per jail, how many log lines a ban of that
	// jail keeps as evidence (DefaultEvidence when the jail is not
	// listed). A jail's ban without Evidence gets the lines of its
	// address's strikes in that jail from FirstEvent to LastEvent, the
	// newest ones when there are more, stored oldest first; Commit sets
	// Ban.Evidence to them.
	EvidenceLimit map[string]int
	// Cursor, when not 0, is stored as the number of the last cluster
	// change applied (see Cursor).
	Cursor int64
}

// DefaultEvidence is the evidence kept per ban when Batch.EvidenceLimit
// does not name its jail.
const DefaultEvidence = 10

// Commit writes b in one transaction: either all of it is stored or, on an
// error (an invalid address or prefix, a nil ban, a database error), none.
func (s *Store) Commit(ctx context.Context, b Batch) error {
	if len(b.Positions) == 0 && len(b.Strikes) == 0 && len(b.Bans) == 0 && b.Cursor == 0 {
		return nil
	}
	outbox := s.outbox.Load()
	// Validate before taking the writer.
	prefixes := make([]netip.Prefix, len(b.Bans))
	for i, bn := range b.Bans {
		if bn == nil {
			return fmt.Errorf("store: commit: ban %d is nil", i)
		}
		if !bn.Prefix.IsValid() {
			return fmt.Errorf("store: commit: ban %d (jail %q): invalid prefix %v", i, bn.Jail, bn.Prefix)
		}
		prefixes[i] = bn.Prefix.Masked()
	}
	for i := range b.Strikes {
		if !b.Strikes[i].Addr.IsValid() {
			return fmt.Errorf("store: commit: strike %d (jail %q): invalid address", i, b.Strikes[i].Jail)
		}
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	defer rollback(tx)

	if len(b.Positions) > 0 {
		st := tx.StmtContext(ctx, s.upsertPosition)
		for _, p := range b.Positions {
			if _, err := st.ExecContext(ctx, p.Path, int64(p.Inode), p.Offset, int64(p.Fingerprint), p.Cursor); err != nil {
				return fmt.Errorf("store: commit: position %q: %w", p.Path, err)
			}
		}
	}
	if len(b.Strikes) > 0 {
		st := tx.StmtContext(ctx, s.insertStrike)
		var out *sql.Stmt
		if outbox&OutboxStrikes != 0 {
			out = tx.StmtContext(ctx, s.insertOutbox)
		}
		var hours hourCounts
		for _, k := range b.Strikes {
			hours.add(k.Time, string(k.Kind))
			key := addrKey(k.Addr)
			if _, err := st.ExecContext(ctx, k.Jail, key, toNS(k.Time), string(k.Kind), k.Weight, k.Line, k.Node); err != nil {
				return fmt.Errorf("store: commit: strike %v in %q: %w", k.Addr, k.Jail, err)
			}
			if out != nil && k.Node == "" {
				if _, err := out.ExecContext(ctx, "strike", 0, k.Jail, key, k.Addr.BitLen(), toNS(k.Time), "", string(k.Kind), k.Weight); err != nil {
					return fmt.Errorf("store: commit: strike %v in %q: outbox: %w", k.Addr, k.Jail, err)
				}
			}
		}
		if err := hours.store(ctx, tx, s.addEventHour); err != nil {
			return fmt.Errorf("store: commit: events per hour: %w", err)
		}
	}
	ids := make([]int64, len(b.Bans))
	found := make([][]string, len(b.Bans))
	if len(b.Bans) > 0 {
		end := tx.StmtContext(ctx, s.endActive)
		ins := tx.StmtContext(ctx, s.insertBan)
		insNew := tx.StmtContext(ctx, s.insertNewBan)
		ev := tx.StmtContext(ctx, s.insertEvidence)
		lines := tx.StmtContext(ctx, s.strikeLines)
		own := batchStrikes(b, prefixes)
		var hours hourCounts
		for i, bn := range b.Bans {
			hours.add(bn.Start, bn.Jail)
			p := prefixes[i]
			key := addrKey(p.Addr())
			evidence := bn.Evidence
			if evidence == nil && bn.Origin == ban.OriginJail {
				limit, ok := b.EvidenceLimit[bn.Jail]
				if !ok {
					limit = DefaultEvidence
				}
				if own != nil && own[i] != nil {
					evidence = evidenceOf(b.Strikes, own[i], limit)
				} else if evidence, err = strikeEvidence(ctx, lines, bn, key, limit); err != nil {
					return fmt.Errorf("store: commit: evidence of %v in %q: %w", p, bn.Jail, err)
				}
				found[i] = evidence
			}
			var res sql.Result
			if bn.Ended == ban.EndActive {
				res, err = insertActive(ctx, insNew, bn, key, p.Bits())
				if err != nil {
					return fmt.Errorf("store: commit: ban of %v in %q: %w", p, bn.Jail, err)
				}
				if res == nil {
					// The prefix has an active ban in the jail: this one
					// replaces it.
					if _, err := end.ExecContext(ctx, toNS(bn.Start), key, p.Bits(), bn.Jail); err != nil {
						return fmt.Errorf("store: commit: replace ban of %v in %q: %w", p, bn.Jail, err)
					}
				}
			}
			if res == nil {
				res, err = ins.ExecContext(ctx, key, p.Bits(), bn.Jail, bn.Origin,
					toNS(bn.Start), toNS(bn.End), bn.Strikes, bn.Reason,
					toNS(bn.FirstEvent), toNS(bn.LastEvent), bn.Ended, toNS(bn.EndedAt), bn.EndedBy, bn.Node)
				if err != nil {
					return fmt.Errorf("store: commit: ban of %v in %q: %w", p, bn.Jail, err)
				}
			}
			if ids[i], err = res.LastInsertId(); err != nil {
				return fmt.Errorf("store: commit: ban of %v in %q: %w", p, bn.Jail, err)
			}
			if outbox&OutboxBans != 0 && bn.Node == "" {
				if _, err := tx.StmtContext(ctx, s.insertOutbox).ExecContext(ctx, "ban", ids[i], bn.Jail, nil, 0, 0, "", "", 0); err != nil {
					return fmt.Errorf("store: commit: ban of %v in %q: outbox: %w", p, bn.Jail, err)
				}
			}
			if len(evidence) > 0 {
				lines, err := json.Marshal(evidence)
				if err != nil {
					return fmt.Errorf("store: commit: evidence of %v in %q: %w", p, bn.Jail, err)
				}
				if _, err := ev.ExecContext(ctx, ids[i], string(lines)); err != nil {
					return fmt.Errorf("store: commit: evidence of %v in %q: %w", p, bn.Jail, err)
				}
			}
		}
		if err := hours.store(ctx, tx, s.addBanHour); err != nil {
			return fmt.Errorf("store: commit: bans per hour: %w", err)
		}
	}
	if b.Cursor != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_state SET value = ? WHERE key = 'cursor'`, fmt.Sprint(b.Cursor)); err != nil {
			return fmt.Errorf("store: commit: cluster cursor: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	for i, bn := range b.Bans {
		bn.ID = ids[i]
		bn.Prefix = prefixes[i]
		if found[i] != nil {
			bn.Evidence = found[i]
		}
	}
	return nil
}

// batchStrikes finds the bans of b whose evidence b's own strikes give:
// a jail's ban of one address, without Evidence, whose strikes in b from
// FirstEvent to LastEvent weigh exactly its Strikes. Those are the
// strikes its jail counted, so no earlier ones are looked up in the store
// (a look-up costs about 15 µs a ban; in a flood of new addresses, most
// bans come with their strikes in the same batch). For such a ban i,
// own[i] holds the indexes of those strikes in b.Strikes, in order; for
// the others it is nil, and so is own when there are none.
func batchStrikes(b Batch, prefixes []netip.Prefix) (own [][]int) {
	if len(b.Strikes) == 0 {
		return nil
	}
	type key struct {
		jail string
		addr netip.Addr // as addrKey stores it: without a zone
	}
	want := make(map[key][]int)
	for i, bn := range b.Bans {
		p := prefixes[i]
		if bn.Evidence == nil && bn.Origin == ban.OriginJail && p.IsSingleIP() {
			k := key{bn.Jail, p.Addr().WithZone("")}
			want[k] = append(want[k], i)
		}
	}
	if len(want) == 0 {
		return nil
	}
	own = make([][]int, len(b.Bans))
	weight := make([]int, len(b.Bans))
	for si := range b.Strikes {
		k := &b.Strikes[si]
		bans, ok := want[key{k.Jail, k.Addr.WithZone("")}]
		if !ok {
			continue
		}
		t := toNS(k.Time)
		for _, i := range bans {
			bn := b.Bans[i]
			if t >= toNS(bn.FirstEvent) && t <= toNS(bn.LastEvent) {
				own[i] = append(own[i], si)
				weight[i] += k.Weight
			}
		}
	}
	for i := range own {
		if own[i] != nil && weight[i] != b.Bans[i].Strikes {
			own[i] = nil
		}
	}
	return own
}

// evidenceOf returns the lines of strikes[idx], the newest limit of them
// by time (then by order in strikes), oldest first: what strikeEvidence
// reads from the store for the same strikes.
func evidenceOf(strikes []ban.Strike, idx []int, limit int) []string {
	if limit <= 0 {
		return nil
	}
	idx = slices.Clone(idx)
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(toNS(strikes[a].Time), toNS(strikes[b].Time)) })
	if len(idx) > limit {
		idx = idx[len(idx)-limit:]
	}
	out := make([]string, len(idx))
	for j, si := range idx {
		out[j] = strikes[si].Line
	}
	return out
}

// insertActive inserts the active ban bn (its prefix masked to key and
// bits) with st, the insertNewBan statement, unless its prefix already has
// an active ban in its jail: then it inserts nothing and returns a nil
// Result.
func insertActive(ctx context.Context, st *sql.Stmt, bn *ban.Ban, key []byte, bits int) (sql.Result, error) {
	res, err := st.ExecContext(ctx, key, bits, bn.Jail, bn.Origin, toNS(bn.Start), toNS(bn.End), bn.Strikes,
		bn.Reason, toNS(bn.FirstEvent), toNS(bn.LastEvent), bn.Node)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	return res, nil
}

// strikeEvidence reads the lines of bn's strikes, oldest first.
func strikeEvidence(ctx context.Context, st *sql.Stmt, bn *ban.Ban, key []byte, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := st.QueryContext(ctx, bn.Jail, key, toNS(bn.FirstEvent), toNS(bn.LastEvent))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for len(out) < limit && rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Positions returns the stored read positions by path.
func (s *Store) Positions(ctx context.Context) (map[string]source.Position, error) {
	rows, err := s.selectPos.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: positions: %w", err)
	}
	defer rows.Close()
	out := make(map[string]source.Position)
	for rows.Next() {
		var p source.Position
		var inode, fp int64
		if err := rows.Scan(&p.Path, &inode, &p.Offset, &fp, &p.Cursor); err != nil {
			return nil, fmt.Errorf("store: positions: %w", err)
		}
		p.Inode, p.Fingerprint = uint64(inode), uint64(fp)
		out[p.Path] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: positions: %w", err)
	}
	return out, nil
}

// Strikes returns the stored strikes with Time >= since, oldest first (to
// rebuild jail windows at start).
func (s *Store) Strikes(ctx context.Context, since time.Time) ([]ban.Strike, error) {
	rows, err := s.selectStrikes.QueryContext(ctx, toNS(since))
	if err != nil {
		return nil, fmt.Errorf("store: strikes: %w", err)
	}
	defer rows.Close()
	var (
		out  []ban.Strike
		in   interner
		cols [7]any // scanned as the driver made them: no conversions
		dest = [7]any{&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6]}
	)
	for rows.Next() {
		if err := rows.Scan(dest[:]...); err != nil {
			return nil, fmt.Errorf("store: strikes: %w", err)
		}
		var c colReader
		out = append(out, ban.Strike{
			Jail:   in.get(c.text(cols[0])),
			Addr:   c.addr(cols[1]),
			Time:   fromNS(c.int(cols[2])),
			Kind:   event.Kind(in.get(c.text(cols[3]))),
			Weight: int(c.int(cols[4])),
			Line:   c.text(cols[5]),
			Node:   in.get(c.text(cols[6])),
		})
		if c.err != nil {
			return nil, fmt.Errorf("store: strikes: %w", c.err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: strikes: %w", err)
	}
	return out, nil
}

// The active bans' columns, for activeSQL.
const activeCols = `id, addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns, node`

// activeSQL reads the active bans through the partial index bans_active_end
// (a lookup in the table per ban) or, when the active bans are a good part
// of the table, by scanning the table, which is then up to twice as fast.
var activeSQL = [2]string{
	`SELECT ` + activeCols + ` FROM bans WHERE ended = '' AND end_ns > ?`,
	`SELECT ` + activeCols + ` FROM bans NOT INDEXED WHERE ended = '' AND end_ns > ?`,
}

// Active returns the bans not ended whose End is after now, in no
// particular order, without their Evidence (for speed; History loads it).
//
// It is the start-up load of up to millions of bans, so it bypasses
// database/sql's per-row locking and per-column conversions: it runs one
// statement (one snapshot) on a driver connection of the read pool and
// converts the driver's values itself.
func (s *Store) Active(ctx context.Context, now time.Time) ([]ban.Ban, error) {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: active: %w", err)
	}
	defer conn.Close()
	// The number of active bans (a capacity; a later commit may change it)
	// and the span of ids (the table's size, give or take pruned rows).
	var n, span int64
	if err := conn.QueryRowContext(ctx, `SELECT
	(SELECT count(*) FROM bans WHERE ended = ''),
	(SELECT ifnull(max(id) - min(id) + 1, 0) FROM bans)`).Scan(&n, &span); err != nil {
		return nil, fmt.Errorf("store: active: %w", err)
	}
	q := activeSQL[0]
	if n*3 >= span {
		q = activeSQL[1]
	}
	var out []ban.Ban
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare", dc)
		}
		st, err := pc.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer st.Close()
		sq, ok := st.(driver.StmtQueryContext)
		if !ok {
			return fmt.Errorf("driver statement %T cannot query", st)
		}
		rows, err := sq.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: toNS(now)}})
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = readActive(rows, int(n))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: active: %w", err)
	}
	return out, nil
}

// readActive reads the rows of activeSQL into bans, in two goroutines: this
// one steps the statement and collects the driver's values in blocks, a
// second one converts them, so that both cores work on a large load.
func readActive(rows driver.Rows, capacity int) ([]ban.Ban, error) {
	const (
		ncols     = 12
		blockRows = 1024
		inFlight  = 4
	)
	full := make(chan []driver.Value, inFlight)
	free := make(chan []driver.Value, inFlight)
	for range inFlight {
		free <- make([]driver.Value, 0, blockRows*ncols)
	}
	out := make([]ban.Ban, 0, capacity)
	convErr := make(chan error, 1)
	var failed atomic.Bool // the converter met an error: stop reading
	go func() {
		var (
			in  interner
			err error
		)
		for block := range full {
			for r := 0; err == nil && r < len(block); r += ncols {
				cols := block[r : r+ncols]
				var c colReader
				out = append(out, ban.Ban{
					ID:         c.int(cols[0]),
					Prefix:     c.prefix(cols[1], cols[2]),
					Jail:       in.get(c.text(cols[3])),
					Origin:     in.get(c.text(cols[4])),
					Start:      fromNS(c.int(cols[5])),
					End:        fromNS(c.int(cols[6])),
					Strikes:    int(c.int(cols[7])),
					Reason:     in.get(c.text(cols[8])),
					FirstEvent: fromNS(c.int(cols[9])),
					LastEvent:  fromNS(c.int(cols[10])),
					Node:       in.get(c.text(cols[11])),
				})
				if c.err != nil {
					err = fmt.Errorf("ban %v: %w", cols[0], c.err)
					failed.Store(true)
				}
			}
			clear(block)
			free <- block[:0]
		}
		convErr <- err
	}()

	cols := make([]driver.Value, ncols)
	block := <-free
	var err error
	for {
		if err = rows.Next(cols); err != nil {
			break
		}
		block = append(block, cols...)
		if len(block) == cap(block) {
			full <- block
			if failed.Load() {
				block = nil
				break
			}
			block = <-free
		}
	}
	if len(block) > 0 {
		full <- block
	}
	close(full)
	if cerr := <-convErr; cerr != nil {
		return nil, cerr
	}
	if err != io.EOF {
		return nil, err
	}
	return out, nil
}

// colReader converts the driver's values of a row, keeping the first error.
type colReader struct{ err error }

func (c *colReader) fail(want string, v any) {
	if c.err == nil {
		c.err = fmt.Errorf("column is %T, want %s", v, want)
	}
}

func (c *colReader) int(v any) int64 {
	i, ok := v.(int64)
	if !ok {
		c.fail("an integer", v)
	}
	return i
}

// text returns a TEXT (string) or BLOB ([]byte) column as a string.
func (c *colReader) text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	}
	c.fail("text", v)
	return ""
}

func (c *colReader) addr(key any) netip.Addr {
	k, ok := key.([]byte)
	if !ok {
		c.fail("a blob", key)
		return netip.Addr{}
	}
	a, err := keyAddr(k)
	if err != nil && c.err == nil {
		c.err = err
	}
	return a
}

func (c *colReader) prefix(key, bits any) netip.Prefix {
	k, ok := key.([]byte)
	if !ok {
		c.fail("a blob", key)
		return netip.Prefix{}
	}
	p, err := keyPrefix(k, c.int(bits))
	if err != nil && c.err == nil {
		c.err = err
	}
	return p
}

// CountActive returns the number of active bans per jail at now.
func (s *Store) CountActive(ctx context.Context, now time.Time) (map[string]int, error) {
	rows, err := s.countActive.QueryContext(ctx, toNS(now))
	if err != nil {
		return nil, fmt.Errorf("store: count active: %w", err)
	}
	out, err := countByJail(rows)
	if err != nil {
		return nil, fmt.Errorf("store: count active: %w", err)
	}
	return out, nil
}

// countByJail reads rows of (jail, count) and closes them.
func countByJail(rows *sql.Rows) (map[string]int, error) {
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var jail string
		var n int
		if err := rows.Scan(&jail, &n); err != nil {
			return nil, err
		}
		out[jail] = n
	}
	return out, rows.Err()
}

// BanCounts returns, for each single address banned in jail since the
// given time, how many bans it had: the history a repeat offender's next
// ban is escalated from.
func (s *Store) BanCounts(ctx context.Context, jail string, since time.Time) (map[netip.Addr]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT addr, count(*) FROM bans
WHERE jail = ? AND start_ns >= ? AND bits = CASE WHEN length(addr) = 5 THEN 32 ELSE 128 END
GROUP BY addr`, jail, toNS(since))
	if err != nil {
		return nil, fmt.Errorf("store: ban counts: %w", err)
	}
	defer rows.Close()
	out := map[netip.Addr]int{}
	for rows.Next() {
		var key []byte
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("store: ban counts: %w", err)
		}
		a, err := keyAddr(key)
		if err != nil {
			return nil, fmt.Errorf("store: ban counts: %w", err)
		}
		out[a] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: ban counts: %w", err)
	}
	return out, nil
}

// CountAll returns the number of bans per jail in the history, active or
// ended.
func (s *Store) CountAll(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT jail, count(*) FROM bans GROUP BY jail`)
	if err != nil {
		return nil, fmt.Errorf("store: count all: %w", err)
	}
	out, err := countByJail(rows)
	if err != nil {
		return nil, fmt.Errorf("store: count all: %w", err)
	}
	return out, nil
}

// Expire closes (Ended = ban.EndExpired, EndedAt = End) every active ban
// whose End <= now and returns how many. A large expiry is done in
// transactions of a bounded number of bans, so that commits interleave; an
// error leaves the bans expired so far expired.
func (s *Store) Expire(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		res, err := s.expireChunk.ExecContext(ctx, toNS(now))
		if err != nil {
			return total, fmt.Errorf("store: expire: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: expire: %w", err)
		}
		total += int(n)
		if n < chunk {
			break
		}
	}
	if total > 0 {
		s.logger.Debug("store: bans expired", "n", total)
	}
	return total, nil
}

// banCols are the columns scanBan reads, in order.
const banCols = `id, addr, bits, jail, origin, start_ns, end_ns, strikes, reason, first_ns, last_ns, ended, ended_at, ended_by, node`

// scanBan reads a row of banCols. Its errors are for the caller to wrap.
func scanBan(rows *sql.Rows) (ban.Ban, error) {
	var (
		b                                      ban.Ban
		key                                    []byte
		bits, start, end, strikes, f, l, endAt int64
	)
	if err := rows.Scan(&b.ID, &key, &bits, &b.Jail, &b.Origin, &start, &end, &strikes, &b.Reason, &f, &l, &b.Ended, &endAt, &b.EndedBy, &b.Node); err != nil {
		return b, err
	}
	var err error
	if b.Prefix, err = keyPrefix(key, bits); err != nil {
		return b, err
	}
	b.Start, b.End = fromNS(start), fromNS(end)
	b.Strikes = int(strikes)
	b.FirstEvent, b.LastEvent = fromNS(f), fromNS(l)
	b.EndedAt = fromNS(endAt)
	return b, nil
}

// Unban ends the active bans (not ended, End after now) of exactly prefix,
// in jail or in every jail if jail == "", as ban.EndUnbanned by `by` at
// now. It returns the bans ended, as ended, with their Evidence, ordered by
// jail. Bans of narrower or wider prefixes are not touched.
func (s *Store) Unban(ctx context.Context, prefix netip.Prefix, jail string, now time.Time, by string) ([]ban.Ban, error) {
	if !prefix.IsValid() {
		return nil, fmt.Errorf("store: unban: invalid prefix %v", prefix)
	}
	return s.unban(ctx, prefix.Masked(), jail, now, by)
}

// UnbanAll ends every active ban (in jail, or in all jails if jail == "")
// as ban.EndUnbanned by `by`, at now, in one transaction, and returns the
// bans ended.
func (s *Store) UnbanAll(ctx context.Context, jail string, now time.Time, by string) ([]ban.Ban, error) {
	return s.unban(ctx, netip.Prefix{}, jail, now, by)
}

// unban ends the active bans of p (all of them when p is the zero prefix).
func (s *Store) unban(ctx context.Context, p netip.Prefix, jail string, now time.Time, by string) ([]ban.Ban, error) {
	q := `UPDATE bans SET ended = 'unbanned', ended_at = ?, ended_by = ?
WHERE ended = '' AND end_ns > ?`
	args := []any{toNS(now), by, toNS(now)}
	if p.IsValid() {
		q += ` AND addr = ? AND bits = ?`
		args = append(args, addrKey(p.Addr()), p.Bits())
	}
	if jail != "" {
		q += ` AND jail = ?`
		args = append(args, jail)
	}
	q += ` RETURNING ` + banCols

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: unban: %w", err)
	}
	defer rollback(tx)
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: unban: %w", err)
	}
	var out []ban.Ban
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: unban: %w", err)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unban: %w", err)
	}
	if err := loadEvidence(ctx, tx, out); err != nil {
		return nil, err
	}
	if s.outbox.Load()&OutboxBans != 0 {
		st := tx.StmtContext(ctx, s.insertOutbox)
		for _, b := range out {
			if _, err := st.ExecContext(ctx, "unban", 0, b.Jail, addrKey(b.Prefix.Addr()), b.Prefix.Bits(), toNS(now), by, "", 0); err != nil {
				return nil, fmt.Errorf("store: unban: outbox: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: unban: %w", err)
	}
	slices.SortFunc(out, func(a, b ban.Ban) int { return strings.Compare(a.Jail, b.Jail) })
	if len(out) > 0 {
		what := "all"
		if p.IsValid() {
			what = p.String()
		}
		s.logger.Info("store: unbanned", "prefix", what, "jail", jail, "by", by, "n", len(out))
	}
	return out, nil
}

// Prune deletes the strikes older than strikesBefore and the ended bans
// (with their evidence) that ended before historyBefore. It returns the
// number of rows deleted: strikes plus bans (a ban's evidence counts with
// it). It works in transactions of a bounded number of rows.
func (s *Store) Prune(ctx context.Context, strikesBefore, historyBefore time.Time) (int64, error) {
	steps := []struct{ what, q string }{
		{"strikes", `DELETE FROM strikes WHERE id IN (SELECT id FROM strikes WHERE time_ns < ? LIMIT ` + fmt.Sprint(chunk) + `)`},
		// evidence goes by ON DELETE CASCADE, in the same statement
		{"bans", `DELETE FROM bans WHERE id IN (SELECT id FROM bans WHERE ended <> '' AND ended_at < ? LIMIT ` + fmt.Sprint(chunk) + `)`},
	}
	before := []int64{toNS(strikesBefore), toNS(historyBefore)}
	var total int64
	for i, st := range steps {
		if before[i] == 0 {
			continue // zero time: nothing is older
		}
		for {
			res, err := s.w.ExecContext(ctx, st.q, before[i])
			if err != nil {
				return total, fmt.Errorf("store: prune %s: %w", st.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, fmt.Errorf("store: prune %s: %w", st.what, err)
			}
			total += n
			if n < chunk {
				break
			}
		}
	}
	if total > 0 {
		s.logger.Debug("store: pruned", "rows", total)
	}
	return total, nil
}

// Query selects bans for History.
type Query struct {
	// Prefix, if valid, selects the bans whose prefix overlaps it: the bans
	// inside it and the bans of prefixes covering it. The zero Prefix
	// selects any.
	Prefix netip.Prefix
	// Jail, if not "", selects the bans of this jail.
	Jail string
	// Since, if not zero, selects the bans that started at or after it.
	Since time.Time
	// Limit, if > 0, is the most bans returned (the newest).
	Limit int
}

// historySQL builds the query of History.
//
// With a prefix, the matching ids are collected first from the address
// index (a CTE, MATERIALIZED, joined with CROSS JOIN so that SQLite cannot
// reorder it): one key range for the bans inside the prefix (and those of
// its own address, any length), one point search per wider prefix that
// could cover it. The jail and since filters then apply to those rows only
// (the unary + keeps the planner off the jail and start indexes). Without
// a prefix, bans_jail_start or bans_start serves the filters and the order.
func historySQL(q Query) (string, []any) {
	var where []string
	var args []any
	text := `SELECT ` + banCols + ` FROM bans`
	col := func(c string) string { return c }
	if q.Prefix.IsValid() {
		var m string
		m, args = prefixMatches(q.Prefix, "id", "")
		text = `WITH m (ban_id) AS MATERIALIZED (` + m + `)
SELECT ` + banCols + ` FROM m CROSS JOIN bans ON bans.id = m.ban_id`
		col = func(c string) string { return "+" + c }
	}
	if q.Jail != "" {
		where = append(where, col(`jail`)+` = ?`)
		args = append(args, q.Jail)
	}
	if !q.Since.IsZero() {
		where = append(where, col(`start_ns`)+` >= ?`)
		args = append(args, toNS(q.Since))
	}
	if len(where) > 0 {
		text += ` WHERE ` + strings.Join(where, ` AND `)
	}
	text += ` ORDER BY start_ns DESC, id DESC`
	if q.Limit > 0 {
		text += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	return text, args
}

// prefixMatches is a query of cols of the bans inside or covering p (a
// key range of the address index, and a point look-up for each prefix
// covering p), and its arguments; from names the table as it is to be
// read ("bans INDEXED BY bans_addr"; "" for bans).
func prefixMatches(p netip.Prefix, cols, from string) (string, []any) {
	if from == "" {
		from = "bans"
	}
	p = p.Masked()
	lo, hi := rangeKeys(p)
	parts := []string{`SELECT ` + cols + ` FROM ` + from + ` WHERE addr BETWEEN ? AND ?`}
	args := []any{lo, hi}
	for _, c := range covers(p) {
		parts = append(parts, `SELECT `+cols+` FROM `+from+` WHERE addr = ? AND bits BETWEEN ? AND ?`)
		args = append(args, c.key, c.minBits, c.maxBits)
	}
	return strings.Join(parts, ` UNION ALL `), args
}

// History returns the bans (active and ended) matching q, newest (by
// Start) first, with their Evidence.
func (s *Store) History(ctx context.Context, q Query) ([]ban.Ban, error) {
	text, args := historySQL(q)
	// One read transaction: the bans and their evidence from one snapshot.
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	defer rollback(tx)
	rows, err := tx.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	var out []ban.Ban
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: history: %w", err)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	if err := loadEvidence(ctx, tx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// querier is a *sql.Tx or *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// loadEvidence fills in the Evidence of bans.
func loadEvidence(ctx context.Context, tx querier, bans []ban.Ban) error {
	const per = 500 // ids per query, well under SQLite's parameter limit
	byID := make(map[int64]*ban.Ban, len(bans))
	for i := range bans {
		byID[bans[i].ID] = &bans[i]
	}
	for start := 0; start < len(bans); start += per {
		part := bans[start:min(start+per, len(bans))]
		args := make([]any, len(part))
		for i := range part {
			args[i] = part[i].ID
		}
		q := `SELECT ban_id, lines FROM evidence WHERE ban_id IN (?` + strings.Repeat(`, ?`, len(part)-1) + `)`
		if err := func() error {
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				var lines []byte
				if err := rows.Scan(&id, &lines); err != nil {
					return err
				}
				b := byID[id]
				if b == nil {
					continue
				}
				if err := json.Unmarshal(lines, &b.Evidence); err != nil {
					return fmt.Errorf("evidence of ban %d: %w", id, err)
				}
			}
			return rows.Err()
		}(); err != nil {
			return fmt.Errorf("store: load evidence: %w", err)
		}
	}
	return nil
}

// interner shares the strings that repeat across rows (jails, origins,
// reasons, kinds), so that a million bans do not hold a million copies.
type interner map[string]string

// maxInterned bounds an interner, for columns that turn out not to repeat.
const maxInterned = 4096

func (in *interner) get(s string) string {
	if *in == nil {
		*in = make(map[string]string)
	}
	if t, ok := (*in)[s]; ok {
		return t
	}
	if len(*in) < maxInterned {
		(*in)[s] = s
	}
	return s
}
