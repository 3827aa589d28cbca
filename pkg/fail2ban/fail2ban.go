// Package fail2ban reads the bans of fail2ban's SQLite database
// (/var/lib/fail2ban/fail2ban.sqlite3), read-only, and plans their import
// into banwatch: which banwatch jail each goes to, until when, and which
// are left out and why. banctl import fail2ban sends the plan to the
// daemon.
//
// Schemas read (fail2banDb.version): 4 (fail2ban 0.11 and later) keeps the
// current ban of each address per jail in bips, with its time, length
// (-1 permanent) and count; 1 and 2 (0.9, 0.10) keep only bans, one row
// per ban, without a length, which is then unknown. A bans table without
// bips that has a bantime column (-2 when unknown) is read too.
package fail2ban

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"sort"
	"time"

	_ "github.com/mattn/go-sqlite3" // the database/sql driver
)

// DefaultDB is where Debian's fail2ban keeps its database.
const DefaultDB = "/var/lib/fail2ban/fail2ban.sqlite3"

// Ban is one current ban of an address in a fail2ban jail, as stored.
type Ban struct {
	Jail string
	IP   string    // as fail2ban stored it: an address, a CIDR, or whatever its ticket held
	Time time.Time // timeofban
	// BanTime is the ban's length; meaningful unless Permanent or
	// Unknown.
	BanTime   time.Duration
	Permanent bool // bantime -1: fail2ban never lifts it
	Unknown   bool // no bantime stored (fail2ban before 0.11), or -2
	Count     int  // how many times fail2ban banned it (bancount; rows of bans in older schemas)
}

// DB is a fail2ban database opened read-only.
type DB struct {
	db      *sql.DB
	path    string
	Version int    // fail2banDb.version; 0 if absent
	Table   string // where the bans are read from: "bips" or "bans"
}

// Open opens the database at path read-only (mode=ro: nothing is written,
// not even a journal) and finds out its schema.
func Open(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("fail2ban: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", "5000")
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("fail2ban: %s: %w", path, err)
	}
	d := &DB{db: db, path: path}
	if err := d.schema(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("fail2ban: %s: %w", path, err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Path is the database's file.
func (d *DB) Path() string { return d.path }

func (d *DB) tables(ctx context.Context) (map[string]bool, error) {
	return d.names(ctx, "SELECT name FROM sqlite_master WHERE type = 'table'")
}

func (d *DB) columns(ctx context.Context, table string) (map[string]bool, error) {
	return d.names(ctx, "SELECT name FROM pragma_table_info(?)", table)
}

// names returns the set of the single column query yields.
func (d *DB) names(ctx context.Context, query string, args ...any) (map[string]bool, error) {
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

func (d *DB) schema(ctx context.Context) error {
	tabs, err := d.tables(ctx)
	if err != nil {
		return fmt.Errorf("not an SQLite database fail2ban wrote: %w", err)
	}
	if tabs["fail2banDb"] {
		var v sql.NullInt64
		err := d.db.QueryRowContext(ctx, "SELECT version FROM fail2banDb LIMIT 1").Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		d.Version = int(v.Int64)
	}
	switch {
	case tabs["bips"]:
		d.Table = "bips"
	case tabs["bans"]:
		d.Table = "bans"
	default:
		return errors.New("no bips or bans table: not a fail2ban database")
	}
	return nil
}

// seconds converts a stored number of seconds (INTEGER, or REAL in the
// oldest schema) to a time.
func seconds(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).Round(time.Millisecond)
}

// Bans returns the current bans: one per address and jail (the latest),
// expired ones included, sorted by jail and then address as stored.
func (d *DB) Bans(ctx context.Context) ([]Ban, error) {
	cols, err := d.columns(ctx, d.Table)
	if err != nil {
		return nil, fmt.Errorf("fail2ban: %s: %w", d.path, err)
	}
	for _, c := range []string{"jail", "ip", "timeofban"} {
		if !cols[c] {
			return nil, fmt.Errorf("fail2ban: %s: table %s has no column %s", d.path, d.Table, c)
		}
	}
	bantime, bancount := "NULL", "NULL"
	if cols["bantime"] {
		bantime = "bantime"
	}
	if cols["bancount"] {
		bancount = "bancount"
	}
	rows, err := d.db.QueryContext(ctx, fmt.Sprintf("SELECT jail, ip, timeofban, %s, %s FROM %s", bantime, bancount, d.Table))
	if err != nil {
		return nil, fmt.Errorf("fail2ban: %s: %w", d.path, err)
	}
	defer rows.Close()
	type key struct{ jail, ip string }
	latest := map[key]*Ban{}
	for rows.Next() {
		var (
			jail, ip string
			ip0      sql.NullString
			tob      float64
			bt, bc   sql.NullInt64
		)
		if err := rows.Scan(&jail, &ip0, &tob, &bt, &bc); err != nil {
			return nil, fmt.Errorf("fail2ban: %s: %w", d.path, err)
		}
		ip = ip0.String
		b := Ban{Jail: jail, IP: ip, Time: seconds(tob), Count: 1}
		switch {
		case !bt.Valid || bt.Int64 <= -2:
			b.Unknown = true
		case bt.Int64 < 0:
			b.Permanent = true
		default:
			b.BanTime = time.Duration(min(bt.Int64, math.MaxInt64/int64(time.Second))) * time.Second
		}
		if bc.Valid && bc.Int64 > 0 {
			b.Count = int(bc.Int64)
		}
		k := key{jail, ip}
		if old, ok := latest[k]; ok {
			// Only the bans table of an older schema has several rows
			// per address and jail: one per ban.
			if !bc.Valid {
				b.Count = old.Count + 1
			}
			if old.Time.After(b.Time) {
				old.Count = b.Count
				continue
			}
		}
		latest[k] = &b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fail2ban: %s: %w", d.path, err)
	}
	out := make([]Ban, 0, len(latest))
	for _, b := range latest {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Jail != out[j].Jail {
			return out[i].Jail < out[j].Jail
		}
		return out[i].IP < out[j].IP
	})
	return out, nil
}
