package fail2ban_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/fail2ban"
	"github.com/banwatch/banwatch/pkg/fail2ban/fail2bantest"
)

// now is the time of the test databases' import; their bans are placed
// around it.
var now = time.Now().Truncate(time.Second)

func ago(d time.Duration) int64 { return now.Add(-d).Unix() }

// current is a database in fail2ban 1.0's schema, made by fail2ban's code.
var current = []fail2bantest.Ban{
	{Jail: "postfix-sasl", IP: "203.0.113.1", Time: ago(time.Hour), BanTime: fail2bantest.Seconds(24 * time.Hour), Count: 1},
	{Jail: "postfix", IP: "203.0.113.1", Time: ago(time.Hour), BanTime: fail2bantest.Seconds(2 * time.Hour), Count: 2}, // shorter: the duplicate
	{Jail: "sshd", IP: "203.0.113.1", Time: ago(time.Hour), BanTime: fail2bantest.Seconds(2 * time.Hour), Count: 1},    // same address, another jail
	{Jail: "sshd", IP: "203.0.113.2", Time: ago(48 * time.Hour), BanTime: fail2bantest.Seconds(time.Hour), Count: 1},   // expired
	{Jail: "recidive", IP: "198.51.100.3", Time: ago(72 * time.Hour), BanTime: fail2bantest.Permanent, Count: 5},
	{Jail: "dovecot", IP: "2001:db8::7", Time: ago(10 * time.Minute), BanTime: fail2bantest.Seconds(time.Hour), Count: 3},
	{Jail: "dovecot", IP: "2001:db8:1::/64", Time: ago(10 * time.Minute), BanTime: fail2bantest.Seconds(time.Hour), Count: 1},
	{Jail: "dovecot", IP: "198.51.100.9", Time: ago(time.Minute)}, // the jail's default: 600 s
	{Jail: "sshd", IP: "not-an-address", Time: ago(time.Minute), BanTime: fail2bantest.Seconds(time.Hour), Count: 1},
	{Jail: "sshd", IP: "127.0.0.1", Time: ago(time.Minute), BanTime: fail2bantest.Seconds(time.Hour), Count: 1},
	{Jail: "apache-auth", IP: "192.0.2.77", Time: ago(time.Minute), BanTime: fail2bantest.Seconds(time.Hour), Count: 1},
}

func TestReadCurrentSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	fail2bantest.Create(t, path, current)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := fail2ban.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	bans, err := db.Bans(context.Background())
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if db.Version != 4 || db.Table != "bips" {
		t.Errorf("schema %d, table %s; want 4, bips", db.Version, db.Table)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("reading changed the database")
	}
	if len(bans) != len(current) {
		t.Fatalf("%d bans, want %d: %+v", len(bans), len(current), bans)
	}
	got := map[string]fail2ban.Ban{}
	for _, b := range bans {
		got[b.Jail+" "+b.IP] = b
	}
	for _, c := range []struct {
		key       string
		banTime   time.Duration
		permanent bool
		count     int
	}{
		{"postfix-sasl 203.0.113.1", 24 * time.Hour, false, 1},
		{"recidive 198.51.100.3", 0, true, 5},
		{"dovecot 2001:db8::7", time.Hour, false, 3},
		{"dovecot 198.51.100.9", 600 * time.Second, false, 0},
		{"sshd not-an-address", time.Hour, false, 1},
	} {
		b, ok := got[c.key]
		if !ok {
			t.Errorf("%s: missing", c.key)
			continue
		}
		if b.BanTime != c.banTime || b.Permanent != c.permanent || b.Unknown || c.count > 0 && b.Count != c.count {
			t.Errorf("%s: %+v", c.key, b)
		}
	}
	if b := got["dovecot 2001:db8::7"]; !b.Time.Equal(now.Add(-10 * time.Minute)) {
		t.Errorf("time %v, want %v", b.Time, now.Add(-10*time.Minute))
	}
}

func TestPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	fail2bantest.Create(t, path, current)
	bans := read(t, path)
	opt := fail2ban.Options{Now: now, Running: map[string]bool{"postfix": true, "dovecot": true},
		Map: map[string]string{"apache-auth": "postfix"}}
	plan := fail2ban.Plan(bans, opt)
	got := map[string]fail2ban.Entry{}
	for _, e := range plan {
		got[e.Ban.Jail+" "+e.Ban.IP] = e
	}
	cases := []struct {
		key   string
		jail  string
		until time.Time
		skip  string
		in    string // in the reason or the detail
	}{
		{"postfix-sasl 203.0.113.1", "postfix", now.Add(23 * time.Hour), "", "imported from fail2ban (jail postfix-sasl, banned at "},
		{"postfix 203.0.113.1", "postfix", time.Time{}, fail2ban.SkipDuplicate, "banned longer in fail2ban jail postfix-sasl"},
		{"sshd 203.0.113.1", "manual", now.Add(time.Hour), "", "once)"},
		{"sshd 203.0.113.2", "manual", time.Time{}, fail2ban.SkipExpired, "ended "},
		{"recidive 198.51.100.3", "manual", now.Add(-72 * time.Hour).Add(fail2ban.DefaultPermanentFor), "", "5 times; permanent there)"}, // from fail2ban's ban time
		{"dovecot 2001:db8::7", "dovecot", now.Add(50 * time.Minute), "", "3 times)"},
		{"dovecot 2001:db8:1::/64", "dovecot", now.Add(50 * time.Minute), "", ""},
		{"dovecot 198.51.100.9", "dovecot", now.Add(9 * time.Minute), "", ""},
		{"sshd not-an-address", "manual", time.Time{}, fail2ban.SkipInvalid, `"not-an-address" is not an address`},
		{"sshd 127.0.0.1", "manual", now.Add(59 * time.Minute), "", ""}, // the daemon refuses it
		{"apache-auth 192.0.2.77", "postfix", now.Add(59 * time.Minute), "", ""},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			e, ok := got[c.key]
			if !ok {
				t.Fatal("missing")
			}
			if e.Jail != c.jail || e.Skip != c.skip || c.skip == "" && !e.Until.Equal(c.until) ||
				!strings.Contains(e.Reason+e.Detail, c.in) {
				t.Errorf("got jail %s until %v skip %q reason %q detail %q", e.Jail, e.Until, e.Skip, e.Reason, e.Detail)
			}
		})
	}
	sum := fail2ban.Summarize(plan, opt, func(i int) string { return plan[i].Skip })
	var sshd *fail2ban.Summary
	for i := range sum {
		if sum[i].Fail2banJail == "sshd" {
			sshd = &sum[i]
		}
	}
	if sshd == nil || sshd.Jail != "manual" || !strings.Contains(sshd.Note, "sshd does not run") || sshd.Imported != 2 ||
		sshd.Skipped[fail2ban.SkipExpired] != 1 || sshd.Skipped[fail2ban.SkipInvalid] != 1 {
		t.Errorf("summary of sshd: %+v", sshd)
	}
}

func read(t *testing.T, path string) []fail2ban.Ban {
	t.Helper()
	db, err := fail2ban.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bans, err := db.Bans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bans
}

// The databases of older fail2ban versions that Debian's package ships
// with its tests, as they are and as fail2ban 1.0 upgrades them. They have
// no ban length: --default-for applies from the ban's time.
func TestOlderSchemas(t *testing.T) {
	dir := t.TempDir()
	upgraded := fail2bantest.OldDB(t, "database_v2.db", t.TempDir())
	fail2bantest.Upgrade(t, upgraded)
	v2Time := time.Unix(1417596235, 0) // the later of its two bans
	cases := []struct {
		name    string
		path    string
		version int
		table   string
		ips     string
		at      time.Time
	}{
		{"schema 1 (fail2ban 0.9)", fail2bantest.OldDB(t, "database_v1.db", dir), 1, "bans", "127.0.0.1", time.Unix(1388009242, 259e6)},
		{"schema 2 (fail2ban 0.10)", fail2bantest.OldDB(t, "database_v2.db", dir), 2, "bans", "1.2.3.7 1.2.3.8", v2Time},
		{"schema 2 upgraded by fail2ban 1.0", upgraded, 4, "bips", "1.2.3.7 1.2.3.8", v2Time},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := fail2ban.Open(context.Background(), c.path)
			if err != nil {
				t.Fatal(err)
			}
			bans, err := db.Bans(context.Background())
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if db.Version != c.version || db.Table != c.table {
				t.Errorf("schema %d table %s, want %d %s", db.Version, db.Table, c.version, c.table)
			}
			var ips []string
			for _, b := range bans {
				ips = append(ips, b.IP)
				if !b.Unknown || b.Count != 1 {
					t.Errorf("%+v: want an unknown length, once", b)
				}
			}
			if strings.Join(ips, " ") != c.ips {
				t.Errorf("addresses %v, want %s", ips, c.ips)
			}
			if last := bans[len(bans)-1].Time; !last.Equal(c.at) {
				t.Errorf("time %v, want %v", last, c.at)
			}
			// Today these bans are long over; an hour after the last of
			// them they were active, for --default-for from their time.
			for _, e := range fail2ban.Plan(bans, fail2ban.Options{Now: time.Now()}) {
				if e.Skip != fail2ban.SkipExpired {
					t.Errorf("%s today: %+v", e.Ban.IP, e)
				}
			}
			then := c.at.Add(time.Hour)
			plan := fail2ban.Plan(bans, fail2ban.Options{Now: then, DefaultFor: 2 * time.Hour})
			last := plan[len(plan)-1]
			if last.Skip != "" || last.Jail != "manual" || !last.Until.Equal(c.at.Add(2*time.Hour).Truncate(time.Second)) ||
				!strings.Contains(last.Reason, "its length unknown, 2h0m0s taken") {
				t.Errorf("an hour after: %+v", last)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "text")
	os.WriteFile(notDB, []byte("hello"), 0o644)
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "none.sqlite3"), "no such file"},
		{notDB, "not an SQLite database fail2ban wrote"},
	} {
		_, err := fail2ban.Open(context.Background(), c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "fail2ban: ") {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
}
