package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
)

// HourCount is how many bans or events of one key (a jail, or an event
// kind) began in the hour starting at Hour (UTC, on the hour).
type HourCount struct {
	Hour time.Time
	Key  string
	N    int
}

// KeyCount is one row of a top list: a key (an address, a prefix, a jail,
// a fingerprint) and how many bans it had.
type KeyCount struct {
	Key string
	N   int
}

// Top is what the history views rank over the bans begun since a time:
// each list is the N largest counts, largest first (ties by key: Addrs,
// Nets24 and Nets64 in address order, IPv4 before IPv6, an address before
// the prefixes of its own address; Jails and Fingerprints as strings).
type Top struct {
	Since time.Time
	Bans  int // bans begun since Since
	// Addrs ranks the banned addresses and prefixes as banned
	// ("192.0.2.7", "2001:db8::/64"); Nets24 the IPv4 /24s and Nets64 the
	// IPv6 /64s the bans fall in ("192.0.2.0/24"), counting a ban of a
	// wider prefix under its first address's /24 or /64.
	Addrs, Nets24, Nets64 []KeyCount
	Jails                 []KeyCount
	// Fingerprints ranks the fingerprints that made bans: the reasons
	// "instant helo=x", "instant user=x", "instant <kind>" and
	// "fingerprint helo=x" (learned, with " learned from N addresses" cut
	// off), a repeat offender's " (repeat offender: ban N)" cut off too.
	Fingerprints []KeyCount
}

// PageQuery selects one page of history, newest first: bans of Jail (""
// for all) inside or covering Prefix (the zero prefix for all), ended as
// Ended ("" for any; "active" for the active ones, or EndExpired,
// EndUnbanned, EndReplaced), begun before the ban Before (the zero cursor
// for the newest), at most Limit. The page after a page is the same query
// with Before set to its last ban's Start and ID.
type PageQuery struct {
	Jail   string
	Prefix netip.Prefix
	Ended  string
	Before Cursor
	Limit  int
}

// Cursor is a place in the history, newest first: the ban begun at Start
// with row ID. The zero Cursor is before the newest ban. Start is to the
// nanosecond, as stored: one carried in a URL must keep all its digits
// (time.RFC3339Nano), or the next page repeats or skips the bans begun in
// the same second.
type Cursor struct {
	Start time.Time
	ID    int64
}

// nsPerHour is the length of an hour of ban_hours and event_hours.
const nsPerHour = int64(time.Hour)

// hourOf returns the hour number (since the epoch, UTC) of t, as the
// aggregates store it: toNS(t) / nsPerHour. The zero time is hour 0.
func hourOf(t time.Time) int64 { return toNS(t) / nsPerHour }

// hourTime is the start of hour number h.
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

// hourKey is an hour and a jail or event kind.
type hourKey struct {
	hour int64
	key  string
}

// hourCounts counts a transaction's bans per hour and jail, or strikes
// per hour and kind, for ban_hours or event_hours. A batch holds few
// pairs; the bans of a node's first load of the cluster's active bans,
// a week's hours times the jails.
type hourCounts struct {
	n     map[hourKey]int
	order []hourKey // the pairs in the order they came, for the upserts
}

// add counts one at t under key.
func (hc *hourCounts) add(t time.Time, key string) {
	k := hourKey{hourOf(t), key}
	if hc.n == nil {
		hc.n = map[hourKey]int{}
	}
	if _, ok := hc.n[k]; !ok {
		hc.order = append(hc.order, k)
	}
	hc.n[k]++
}

// store adds hc to the counts of st (addEventHour or addBanHour) in tx.
func (hc *hourCounts) store(ctx context.Context, tx *sql.Tx, st *sql.Stmt) error {
	if len(hc.order) == 0 {
		return nil
	}
	add := tx.StmtContext(ctx, st)
	for _, k := range hc.order {
		if _, err := add.ExecContext(ctx, k.hour, k.key, hc.n[k]); err != nil {
			return err
		}
	}
	return nil
}

// BanHours returns the bans begun in the hour of since and after, per
// hour and jail, ordered by hour then jail; the zero since for all. Hours
// without bans are left out. The counts are kept as bans are stored and
// outlive the bans pruned from the history.
func (s *Store) BanHours(ctx context.Context, since time.Time) ([]HourCount, error) {
	out, err := s.hours(ctx, `SELECT hour, jail, n FROM ban_hours WHERE hour >= ? ORDER BY hour, jail`, since)
	if err != nil {
		return nil, fmt.Errorf("store: ban hours: %w", err)
	}
	return out, nil
}

// EventHours returns the events (the strikes Commit stored) of the hour of
// since and after, per hour and kind (HourCount.Key), ordered by hour then
// kind; the zero since for all. The counts outlive the strikes, which are
// pruned after the jails' find_time.
func (s *Store) EventHours(ctx context.Context, since time.Time) ([]HourCount, error) {
	out, err := s.hours(ctx, `SELECT hour, kind, n FROM event_hours WHERE hour >= ? ORDER BY hour, kind`, since)
	if err != nil {
		return nil, fmt.Errorf("store: event hours: %w", err)
	}
	return out, nil
}

// hours runs a query of (hour, key, n) from the hour of since.
func (s *Store) hours(ctx context.Context, query string, since time.Time) ([]HourCount, error) {
	rows, err := s.r.QueryContext(ctx, query, hourOf(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out []HourCount
		in  interner
	)
	for rows.Next() {
		var h int64
		var key string
		var n int
		if err := rows.Scan(&h, &key, &n); err != nil {
			return nil, err
		}
		out = append(out, HourCount{Hour: hourTime(h), Key: in.get(key), N: n})
	}
	return out, rows.Err()
}

// Top ranks the bans begun at or after since (the zero time for all): see
// the Top type. Each list holds at most n entries; n must be at least 1.
//
// It reads in one read transaction, so that its counts agree: the bans per
// jail from the index on (jail, start_ns), for the jails ban_hours names
// since the hour of since; the fingerprints' bans, grouped by reason; and
// the bans grouped by prefix, in the prefixes' order, from which the /24s
// and /64s are counted as runs of that order, so that only the lists' n
// entries are kept in Go, however many addresses there are. The last two
// walk the bans of the period on the start_ns index.
func (s *Store) Top(ctx context.Context, since time.Time, n int) (*Top, error) {
	if n < 1 {
		return nil, fmt.Errorf("store: top: n is %d, want at least 1", n)
	}
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: top: %w", err)
	}
	defer rollback(tx)
	out := &Top{Since: since}
	for _, f := range []func(context.Context, *sql.Tx, int64, int, *Top) error{topJails, topFingerprints, topPrefixes} {
		if err := f(ctx, tx, toNS(since), n, out); err != nil {
			return nil, fmt.Errorf("store: top: %w", err)
		}
	}
	return out, nil
}

// topJails counts the bans since sinceNS per jail, and in all. ban_hours
// names every jail with bans in the hour of sinceNS or after; each is
// then a count of a range of bans_jail_start, which covers it.
func topJails(ctx context.Context, tx *sql.Tx, sinceNS int64, n int, out *Top) error {
	rows, err := tx.QueryContext(ctx, `SELECT j.jail,
	(SELECT count(*) FROM bans INDEXED BY bans_jail_start WHERE bans.jail = j.jail AND start_ns >= ?1)
FROM (SELECT DISTINCT jail FROM ban_hours WHERE hour >= ?2) AS j`, sinceNS, sinceNS/nsPerHour)
	if err != nil {
		return err
	}
	defer rows.Close()
	jails := map[string]int{}
	for rows.Next() {
		var jail string
		var c int
		if err := rows.Scan(&jail, &c); err != nil {
			return err
		}
		if c > 0 {
			jails[jail] = c
			out.Bans += c
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	out.Jails = rank(jails, n)
	return nil
}

// topFingerprints counts the bans since sinceNS per fingerprint.
func topFingerprints(ctx context.Context, tx *sql.Tx, sinceNS int64, n int, out *Top) error {
	rows, err := tx.QueryContext(ctx, `SELECT reason, count(*) FROM bans INDEXED BY bans_start
WHERE start_ns >= ? AND (reason GLOB 'instant *' OR reason GLOB 'fingerprint *') GROUP BY reason`, sinceNS)
	if err != nil {
		return err
	}
	defer rows.Close()
	fps := map[string]int{}
	for rows.Next() {
		var fp string
		var c int
		if err := rows.Scan(&fp, &c); err != nil {
			return err
		}
		// A repeat offender's ban says so at the end (pkg/jail); a
		// learned fingerprint's first ban says how many addresses taught
		// it, its later ones do not.
		if i := strings.LastIndex(fp, " (repeat offender: ban "); i >= 0 && strings.HasSuffix(fp, ")") {
			fp = fp[:i]
		}
		if i := strings.Index(fp, " learned from "); i >= 0 && strings.HasPrefix(fp, "fingerprint ") {
			fp = fp[:i]
		}
		fps[fp] += c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	out.Fingerprints = rank(fps, n)
	return nil
}

// rank returns the n largest counts of m, largest first, ties by key.
func rank(m map[string]int, n int) []KeyCount {
	out := make([]KeyCount, 0, len(m))
	for k, c := range m {
		out = append(out, KeyCount{Key: k, N: c})
	}
	slices.SortFunc(out, func(a, b KeyCount) int {
		if a.N != b.N {
			return cmp.Compare(b.N, a.N)
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out[:min(n, len(out))]
}

// topPrefixes ranks the prefixes banned since sinceNS, and the /24s and
// /64s they fall in.
//
// SQLite groups the bans by key blob and length and hands the groups over
// in key order: within a family the order of the addresses, so that the
// prefixes of one /24 (or /64) come one after the other. Each list keeps
// its n best as the groups go by; a group that ties with the last kept
// one comes later in key order and loses, which ranks ties in key order.
func topPrefixes(ctx context.Context, tx *sql.Tx, sinceNS int64, n int, out *Top) error {
	rows, err := tx.QueryContext(ctx, `SELECT addr, bits, count(*)
FROM bans INDEXED BY bans_start WHERE start_ns >= ? GROUP BY addr, bits ORDER BY addr, bits`, sinceNS)
	if err != nil {
		return err
	}
	defer rows.Close()
	addrs, nets24, nets64 := newRanking(n), newRanking(n), newRanking(n)
	var (
		key     sql.RawBytes
		bits, c int64
		net     [net64Len]byte // the running /24 or /64: the start of its keys
		netLen  int            // net24Len or net64Len; 0 before the first group
		netN    int            // bans in the running net
	)
	flush := func() {
		switch {
		case netLen == net24Len && nets24.wants(netN):
			a := netip.AddrFrom4([4]byte{net[1], net[2], net[3], 0})
			nets24.add(netN, netip.PrefixFrom(a, 24))
		case netLen == net64Len && nets64.wants(netN):
			var b [16]byte
			copy(b[:], net[1:9])
			nets64.add(netN, netip.PrefixFrom(netip.AddrFrom16(b), 64))
		}
	}
	for rows.Next() {
		if err := rows.Scan(&key, &bits, &c); err != nil {
			return err
		}
		var l int
		switch {
		case len(key) == 5 && key[0] == fam4:
			l = net24Len
		case len(key) == 17 && key[0] == fam6:
			l = net64Len
		default:
			return fmt.Errorf("bad address key %x", []byte(key))
		}
		if l != netLen || !bytes.Equal(key[:l], net[:l]) {
			flush()
			netLen, netN = copy(net[:], key[:l]), 0
		}
		netN += int(c)
		if addrs.wants(int(c)) {
			p, err := keyPrefix(key, bits)
			if err != nil {
				return err
			}
			addrs.add(int(c), p)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	flush()
	out.Addrs = addrs.list(func(p netip.Prefix) string { return ban.IP(p) })
	out.Nets24 = nets24.list(netip.Prefix.String)
	out.Nets64 = nets64.list(netip.Prefix.String)
	return nil
}

// The lengths of the start of a key blob that names its /24 (IPv4) or /64
// (IPv6): the family byte and 3 or 8 address bytes.
const net24Len, net64Len = 1 + 3, 1 + 8

// ranking keeps the n largest counts offered, largest first; of equal
// counts, the one offered first.
type ranking struct {
	n     int
	items []ranked
}

type ranked struct {
	p netip.Prefix
	n int
}

func newRanking(n int) *ranking { return &ranking{n: n} }

// wants reports whether a count of c would be kept.
func (r *ranking) wants(c int) bool {
	return len(r.items) < r.n || c > r.items[len(r.items)-1].n
}

// add keeps p with count c, which wants allowed, after those of equal count.
func (r *ranking) add(c int, p netip.Prefix) {
	i, _ := slices.BinarySearchFunc(r.items, c, func(it ranked, c int) int {
		if it.n >= c {
			return -1
		}
		return 1
	})
	if len(r.items) == r.n {
		r.items = r.items[:r.n-1]
	}
	r.items = slices.Insert(r.items, i, ranked{p, c})
}

// list returns the kept counts with their prefixes named by name.
func (r *ranking) list(name func(netip.Prefix) string) []KeyCount {
	out := make([]KeyCount, len(r.items))
	for i, it := range r.items {
		out[i] = KeyCount{Key: name(it.p), N: it.n}
	}
	return out
}

// HistoryPage returns a page of the history selected by q, newest first
// (by start, then by row ID), without Evidence. The next page is
// q.Before = Cursor{Start, ID} of the page's last ban; a page shorter than
// q.Limit is the last. q.Limit must be at least 1.
//
// Each page is a search of an index from q.Before, never a count of rows
// to skip: without a prefix, bans_jail_start (with a jail) or bans_start,
// walked backwards, which yield the order, so that a page reads about
// q.Limit rows plus those the ended filter skips; with a prefix, the bans
// matching it from the address index, as History finds them, then sorted.
func (s *Store) HistoryPage(ctx context.Context, q PageQuery) ([]ban.Ban, error) {
	text, args, err := pageSQL(q)
	if err != nil {
		return nil, fmt.Errorf("store: history page: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, text, args...)
	if err != nil {
		return nil, fmt.Errorf("store: history page: %w", err)
	}
	defer rows.Close()
	out := make([]ban.Ban, 0, min(q.Limit, 1000))
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: history page: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history page: %w", err)
	}
	return out, nil
}

// endedFilter is PageQuery.Ended's "active".
const endedFilter = "active"

// pageSQL builds the query of HistoryPage. Each form walks an index in
// the page's order, or (a prefix and a jail or ended filter) gathers the
// prefix's bans from the address index and sorts them:
//   - a prefix alone: the matching (start, id) pairs from the address
//     index (covering), sorted, the page's rows read last; a /16 of
//     150,000 bans takes tens of milliseconds, not the second that
//     reading every matching row took;
//   - active bans: bans_active_start; ended ones: bans_ended_start (its
//     WHERE term repeated, as SQLite needs to use a partial index);
//   - a jail: bans_jail_start; nothing: bans_start.
//
// The index is named: the filters would otherwise tempt the planner with
// a partial index of the active bans (and a sort of all of them).
func pageSQL(q PageQuery) (string, []any, error) {
	if q.Limit < 1 {
		return "", nil, fmt.Errorf("limit %d, want at least 1", q.Limit)
	}
	var ended string // the ended filter's SQL term
	switch q.Ended {
	case "":
	case endedFilter:
		ended = `ended = ''`
	case ban.EndExpired, ban.EndUnbanned, ban.EndReplaced:
		ended = `ended = '` + q.Ended + `' AND ended <> ''` // a constant of ours
	default:
		return "", nil, fmt.Errorf("ended %q: want %q, %q, %q, %q or nothing", q.Ended, endedFilter, ban.EndExpired, ban.EndUnbanned, ban.EndReplaced)
	}
	before := q.Before != (Cursor{})
	var where []string
	var args []any
	col := func(c string) string { return c }
	var text string
	switch {
	case q.Prefix.IsValid() && q.Jail == "" && ended == "":
		// The pairs of the prefix's bans, from the index alone.
		var m string
		m, args = prefixMatches(q.Prefix, "id, start_ns", "bans INDEXED BY bans_addr")
		text = `WITH m (ban_id, s) AS MATERIALIZED (` + m + `),
p AS (SELECT ban_id, s FROM m`
		if before {
			text += ` WHERE (s, ban_id) < (?, ?)`
			args = append(args, toNS(q.Before.Start), q.Before.ID)
		}
		text += ` ORDER BY s DESC, ban_id DESC LIMIT ?)
SELECT ` + banCols + ` FROM p CROSS JOIN bans ON bans.id = p.ban_id ORDER BY p.s DESC, p.ban_id DESC`
		args = append(args, q.Limit)
		return text, args, nil
	case q.Prefix.IsValid():
		var m string
		m, args = prefixMatches(q.Prefix, "id", "")
		text = `WITH m (ban_id) AS MATERIALIZED (` + m + `)
SELECT ` + banCols + ` FROM m CROSS JOIN bans ON bans.id = m.ban_id`
		col = func(c string) string { return "+" + c }
	case q.Ended == endedFilter:
		text = `SELECT ` + banCols + ` FROM bans INDEXED BY bans_active_start`
	case ended != "":
		text = `SELECT ` + banCols + ` FROM bans INDEXED BY bans_ended_start`
	case q.Jail != "":
		text = `SELECT ` + banCols + ` FROM bans INDEXED BY bans_jail_start`
	default:
		text = `SELECT ` + banCols + ` FROM bans INDEXED BY bans_start`
	}
	if q.Jail != "" {
		where = append(where, col(`jail`)+` = ?`)
		args = append(args, q.Jail)
	}
	if ended != "" {
		if q.Prefix.IsValid() {
			ended = strings.ReplaceAll(ended, "ended", "+ended")
		}
		where = append(where, ended)
	}
	if before {
		where = append(where, `(`+col(`start_ns`)+`, `+col(`id`)+`) < (?, ?)`)
		args = append(args, toNS(q.Before.Start), q.Before.ID)
	}
	if len(where) > 0 {
		text += ` WHERE ` + strings.Join(where, ` AND `)
	}
	text += ` ORDER BY start_ns DESC, id DESC LIMIT ?`
	args = append(args, q.Limit)
	return text, args, nil
}

// BanByID returns the ban of row id with its Evidence, and false when
// there is none (never stored, or pruned).
func (s *Store) BanByID(ctx context.Context, id int64) (ban.Ban, bool, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return ban.Ban{}, false, fmt.Errorf("store: ban %d: %w", id, err)
	}
	defer rollback(tx)
	rows, err := tx.QueryContext(ctx, `SELECT `+banCols+` FROM bans WHERE id = ?`, id)
	if err != nil {
		return ban.Ban{}, false, fmt.Errorf("store: ban %d: %w", id, err)
	}
	var bans []ban.Ban
	for rows.Next() {
		b, err := scanBan(rows)
		if err != nil {
			rows.Close()
			return ban.Ban{}, false, fmt.Errorf("store: ban %d: %w", id, err)
		}
		bans = append(bans, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ban.Ban{}, false, fmt.Errorf("store: ban %d: %w", id, err)
	}
	if len(bans) == 0 {
		return ban.Ban{}, false, nil
	}
	if err := loadEvidence(ctx, tx, bans); err != nil {
		return ban.Ban{}, false, err
	}
	return bans[0], true, nil
}
