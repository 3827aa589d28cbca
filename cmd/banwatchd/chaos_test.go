package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the daemon's database, read by the checks

	"github.com/banwatch/banwatch/pkg/daemon"
)

// chaosCycles is how many times TestChaosKill kills the daemon: 5 in the
// test suite, 50 in `make soak`.
var chaosCycles = flag.Int("chaos-cycles", 5, "TestChaosKill: SIGKILL cycles")

// chaosRate is the flood's rate in lines a second.
const chaosRate = 20_000

// TestChaosKill floods the postfix jail's log with SASL failures and kills
// the daemon with SIGKILL at random moments, -chaos-cycles times, starting
// it again after a random pause while the flood goes on. Half the
// addresses get max_strikes (5) failures, the other half one fewer, each
// address's lines spread far apart, so that kills fall between them.
//
// After each kill, every ban the database holds is in the kernel once the
// daemon runs again, with its remaining time. At the end (the flood over,
// the daemon stopped cleanly): the kernel's set and the database's active
// bans are the same; every address with five failures is banned and none
// with four; and the database holds each line's strike exactly once: no
// line was counted twice or skipped.
func TestChaosKill(t *testing.T) {
	needRoot(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d, %d cycles", seed, *chaosCycles)

	e := newEnv(t, newNetns(t), "")
	// Each address in a /24 of its own (10.0.0.0/8, then 11.0.0.0/8 and
	// on): no subnet ban covers another.
	addr := func(i int) string { return fmt.Sprintf("%d.%d.%d.1", 10+i>>16, i>>8&0xff, i&0xff) }
	// The lines: about 1.2 s of flood per cycle. Address i's strikes are
	// spread `spread` lines apart.
	const spread = 3000
	nLines := *chaosCycles * chaosRate * 6 / 5
	nAddrs := nLines * 2 / 9 // 4.5 lines an address on average
	if nAddrs > 100<<16 {
		t.Fatalf("-chaos-cycles %d: too many addresses", *chaosCycles)
	}
	strikes := func(i int) int { return 4 + i%2 } // odd: banned, even: not
	stamp := time.Now().Format(time.Stamp)
	var lines []string
	for base := 0; base < nAddrs; base += spread {
		// A block of `spread` addresses: strike k of each, for k = 1..5.
		for k := range 5 {
			for i := base; i < min(base+spread, nAddrs); i++ {
				if k < strikes(i) {
					lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
						stamp, 100000+i*8+k, addr(i)))
				}
			}
		}
	}
	t.Logf("%d lines, %d addresses (%d to be banned)", len(lines), nAddrs, nAddrs/2)

	// The writer appends the lines at chaosRate, 100 a write, whatever
	// the daemon does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := atomic.Int64{}
	werr := make(chan error, 1)
	go func() {
		werr <- func() error {
			f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(lines); i += chaosRate / 200 {
				j := min(i+chaosRate/200, len(lines))
				if _, err := f.WriteString(strings.Join(lines[i:j], "\n") + "\n"); err != nil {
					return err
				}
				written.Store(int64(j))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-tick.C:
				}
			}
			return nil
		}()
	}()

	db := filepath.Join(e.state, daemon.DBFile)
	quiet := []string{"--log-level", "info"}
	d := e.start(quiet...)
	bansChecked := 0
	for c := 1; c <= *chaosCycles; c++ {
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		d.kill()
		killed := d.log()
		at := written.Load()
		active := activeBans(t, db)
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		d = e.start(quiet...)
		listStart := time.Now()
		els := e.setElements(v4set)
		listEnd := time.Now()
		for a, end := range active {
			el, ok := els[a]
			from, to := listStart, listEnd
			if !ok {
				// A listing taken while the daemon adds elements may miss
				// some (the kernel walks a hash table that may be growing):
				// ask the kernel for the element itself.
				from = time.Now()
				el, ok = e.getElement(v4set, a)
				to = time.Now()
			}
			if !ok {
				t.Fatalf("cycle %d: %s, banned in the database before the kill, is not in the kernel after the restart\n%s", c, a, tail(d.log(), 20))
			}
			// The kernel's time left, read between from and to, must match
			// the database's end: nft -j lists whole seconds (truncated),
			// and a second more is allowed either way.
			if lo, hi := end.Sub(to)-2*time.Second, end.Sub(from)+time.Second; el.Expires < lo || el.Expires > hi {
				t.Fatalf("cycle %d: %s expires in %v in the kernel (its timeout %v), in %v-%v by the database (end %s), read in %v\nthe killed daemon's log ends:\n%s\nthe restarted one's:\n%s",
					c, a, el.Expires, el.Timeout, end.Sub(to).Round(time.Second), end.Sub(from).Round(time.Second), end.Format(time.RFC3339Nano), to.Sub(from).Round(time.Millisecond),
					tail(grepLog(killed, "msg=ban "), 15), tail(grepLog(d.log(), "msg=ban "), 15))
			}
		}
		bansChecked += len(active)
		t.Logf("cycle %d: killed after %d of %d lines written; %d stored bans in the kernel after the restart", c, at, len(lines), len(active))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	// The end: a last address banned means every line before it was read.
	e.appendLines(failures("192.0.2.99", 5)...)
	e.waitElement(v4set, "192.0.2.99", 30*time.Second)
	d.stop(t)

	active := activeBans(t, db)
	els := e.setElements(v4set)
	for a := range els {
		if _, ok := active[a]; !ok {
			t.Errorf("%s is in the kernel but not banned in the database", a)
		}
	}
	for a := range active {
		if _, ok := els[a]; !ok {
			t.Errorf("%s is banned in the database but not in the kernel", a)
		}
	}
	for i := range nAddrs {
		_, banned := active[addr(i)]
		if want := strikes(i) == 5; banned != want {
			t.Errorf("%s with %d failures: banned %v, want %v", addr(i), strikes(i), banned, want)
		}
	}
	counted := strikeCounts(t, db)
	bad := 0
	for i := range nAddrs {
		if got := counted[addr(i)]; got != strikes(i) && bad < 10 {
			bad++
			t.Errorf("%s: %d strikes stored, want %d (one a line written)", addr(i), got, strikes(i))
		}
	}
	t.Logf("RELIABILITY chaos: %d SIGKILL cycles, %d lines, %d addresses, %d bans checked in the kernel after restarts, %d bans at the end",
		*chaosCycles, len(lines), nAddrs, bansChecked, len(active))
}

// activeBans reads the active bans' addresses and ends from the daemon's
// database at path, read-only.
func activeBans(t *testing.T, path string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	query(t, path, "SELECT addr, bits, end_ns FROM bans WHERE ended = ''", func(rows *sql.Rows) error {
		var key []byte
		var bits int
		var end int64
		if err := rows.Scan(&key, &bits, &end); err != nil {
			return err
		}
		a, ok := keyAddr(key)
		if !ok {
			return fmt.Errorf("ban address %x", key)
		}
		s := a.String()
		if bits != a.BitLen() {
			s = netip.PrefixFrom(a, bits).String()
		}
		out[s] = time.Unix(0, end)
		return nil
	})
	return out
}

// strikeCounts counts the strikes the database holds per address (each a
// distinct line: a line stored twice fails the test).
func strikeCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	out := map[string]int{}
	seen := map[string]bool{}
	query(t, path, "SELECT addr, line FROM strikes", func(rows *sql.Rows) error {
		var key []byte
		var line string
		if err := rows.Scan(&key, &line); err != nil {
			return err
		}
		a, ok := keyAddr(key)
		if !ok {
			return fmt.Errorf("strike address %x", key)
		}
		if seen[line] {
			return fmt.Errorf("a line stored twice as a strike: %s", line)
		}
		seen[line] = true
		out[a.String()]++
		return nil
	})
	return out
}

// keyAddr decodes the store's address key: a family byte (4 or 6), then
// the address.
func keyAddr(key []byte) (netip.Addr, bool) {
	if len(key) < 1 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(key[1:])
	return a, ok
}

func query(t *testing.T, path, q string, row func(*sql.Rows) error) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// getElement asks the kernel for addr in the set of kind. (nft 1.0.6
// prints get's answer as text even with -j.)
func (e *env) getElement(kind, addr string) (element, bool) {
	e.t.Helper()
	out, err := e.ns.command("nft", "get", "element", "inet", "banwatch", e.setName(kind), "{ "+addr+" }").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return element{}, false
		}
		e.t.Fatalf("nft get element %s: %v\n%s", addr, err, out)
	}
	// elements = { 10.3.255.1 timeout 6d23h59m58s expires 6d23h59m57s636ms }
	f := strings.Fields(string(out))
	el := element{Val: addr}
	at := slices.Index(f, addr)
	if at < 0 {
		return element{}, false
	}
	for i := at + 1; i+1 < len(f) && f[i] != "}"; i++ {
		switch f[i] {
		case "timeout":
			el.Timeout = nftDuration(e.t, f[i+1])
		case "expires":
			el.Expires = nftDuration(e.t, f[i+1])
		}
	}
	return el, true
}

// nftDuration reads nft's durations: 6d23h59m57s636ms.
func nftDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	s = strings.TrimSuffix(s, ",")
	var d time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		j := i
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			t.Fatalf("nft duration %q", s)
		}
		unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second, "ms": time.Millisecond}[s[i:j]]
		if unit == 0 {
			t.Fatalf("nft duration %q: unit %q", s, s[i:j])
		}
		d += time.Duration(n) * unit
		s = s[j:]
	}
	return d
}

// grepLog returns the lines of log that do not hold s.
func grepLog(log, s string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
