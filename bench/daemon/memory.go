package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // the daemon's store, read to see what it committed
)

// memoryVariant is one jail whose memory per tracked address is measured.
type memoryVariant struct {
	name  string
	jail  string // its name in banctl status
	toml  string
	users int // lines of the first users addresses carry a sasl_username each
	desc  string
}

// learnValues is how many distinct user names the postfix variant's lines
// carry: below the jail's cap of 200,000 values watched for learning,
// beyond which each new value costs a sweep of all of them.
const learnValues = 150_000

var memoryVariants = []memoryVariant{
	{name: "plain", jail: "bench", toml: plainJail(10, "1d"),
		desc: "plain jail (max_strikes 10, find_time 1d), one SASL failure per address"},
	{name: "postfix", jail: "postfix", users: learnValues,
		toml: "[postfix]\nenabled = true\nlogs = [%LOG%]\nmax_strikes = 10\nfind_time = \"1d\"\nmax_tracked = 2000000\n",
		desc: "shipped postfix jail (trust, learn helo/user, subnet, escalate) with max_strikes 10, find_time 1d; the first 150,000 lines carry a sasl_username each, so learn tracks 150,000 values"},
}

func benchMemory(ctx context.Context, o *opts) []result {
	var rs []result
	for _, v := range memoryVariants {
		if !strings.Contains(","+o.memoryVars+",", ","+v.name+",") {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		measure := v.name + " jail, RSS per tracked address"
		per, notes, err := memory(ctx, v, o.memoryN)
		if err != nil {
			rs = append(rs, failed(measure, err))
			continue
		}
		rs = append(rs, result{Measure: measure, Value: per, Unit: "bytes", Result: fmt.Sprintf("%.0f B", per),
			Target: "≤ 200 B", Status: judge(per <= 200), Notes: notes})
	}
	return rs
}

// memoryLog returns n SASL failure lines of distinct addresses stamped
// now, every tenth an IPv6 address, the first users of them with a
// sasl_username of their own.
func memoryLog(n int, users int) []byte {
	var b bytes.Buffer
	stamp := time.Now().Format(time.Stamp)
	for i := 0; i < n; i++ {
		var a netip.Addr
		if i%10 == 9 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		} else {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		}
		fmt.Fprintf(&b, "%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", stamp, 1000+i%30000, a)
		if i < users {
			fmt.Fprintf(&b, ", sasl_username=user%d", i)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// memory returns the daemon's RSS growth per tracked address after n
// addresses struck once each.
func memory(ctx context.Context, v memoryVariant, n int) (float64, string, error) {
	e, err := newEnv(ctx, "memory-"+v.name, v.toml)
	if err != nil {
		return 0, "", err
	}
	defer e.close()
	d, err := e.start(ctx, false, 20*time.Second)
	if err != nil {
		return 0, "", err
	}
	cs := chunks(memoryLog(n, v.users))
	time.Sleep(time.Second)
	before, err := rss(d.pid())
	if err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	var written atomic.Int64
	if _, err := appendChunks(e.logPath, cs, &written); err != nil {
		return 0, "", err
	}
	j, err := e.waitLines(ctx, v.jail, int64(n), 4*time.Minute)
	if err != nil {
		return 0, "", err
	}
	took := time.Since(t0)
	if j.Tracked != int64(n) || j.Strikes != int64(n) || j.Bans != 0 {
		return 0, "", fmt.Errorf("%d addresses tracked, %d strikes and %d bans; want %d, %d and 0", j.Tracked, j.Strikes, j.Bans, n, n)
	}
	counted, err := rss(d.pid())
	if err != nil {
		return 0, "", err
	}
	// The committer is still writing the burst's strikes (each with its
	// line): they are garbage, and the daemon gives the heap back, only
	// once the store holds them and the logs have been quiet for a
	// second. The RSS three seconds after that, the highest seen since
	// the lines were counted as well.
	peak := counted
	if err := e.waitCommitted(ctx, 4*time.Minute, func() error {
		r, err := rss(d.pid())
		peak = max(peak, r)
		return err
	}); err != nil {
		return 0, "", err
	}
	committed := time.Since(t0)
	var after int64
	for i := 0; i < 12; i++ {
		time.Sleep(250 * time.Millisecond)
		if after, err = rss(d.pid()); err != nil {
			return 0, "", err
		}
		peak = max(peak, after)
	}
	per := float64(after-before) / float64(n)
	notes := fmt.Sprintf("%s; %s addresses (10%% IPv6), %s tracked (banctl status); RSS %.1f MiB idle, %.1f MiB 3 s after the store held the burst (%.1f MiB when the lines were counted, peak %.1f MiB); lines counted in %.1f s, committed in %.1f s",
		v.desc, commas(int64(n)), commas(j.Tracked), mib(before), mib(after), mib(counted), mib(peak), took.Seconds(), committed.Seconds())
	return per, notes, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// waitCommitted waits until the daemon's store holds the read position of
// the whole log (so every strike of its lines), calling each every 100 ms.
// It reads the database as a second, read-only SQLite client.
func (e *env) waitCommitted(ctx context.Context, within time.Duration, each func() error) error {
	fi, err := os.Stat(e.logPath)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.state, "banwatch.db")+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(within)
	var off int64
	for {
		if err := each(); err != nil {
			return err
		}
		err := db.QueryRowContext(ctx, `SELECT offset FROM positions WHERE path = ?`, e.logPath).Scan(&off)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reading the daemon's read position: %w", err)
		}
		if off >= fi.Size() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout: the store holds %d of %d bytes of the log after %v", off, fi.Size(), within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
