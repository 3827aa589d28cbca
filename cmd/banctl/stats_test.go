package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin, whatever the machine has

	"github.com/banwatch/banwatch/pkg/control"
)

var update = flag.Bool("update", false, "rewrite cmd/banctl/testdata/*.golden from the output")

// statsDaemon answers top and hours as the daemon does, from canned data:
// Top with its reply, Hours with the hours of bans at or after the hour
// of since (of the jail asked for). It records what it was asked. The
// other requests are not for it (its embedded Handler is nil).
type statsDaemon struct {
	control.Handler

	top  *control.TopReply
	bans []control.BanHour
	err  error // answered instead, when set

	mu    sync.Mutex
	asked []string
}

var _ control.Handler = (*statsDaemon)(nil)

func (d *statsDaemon) record(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, s)
}

func (d *statsDaemon) Top(_ context.Context, since time.Time, n int) (*control.TopReply, error) {
	d.record(fmt.Sprintf("top since %s n %d", since.UTC().Format(time.RFC3339), n))
	if d.err != nil {
		return nil, d.err
	}
	r := *d.top
	r.Since = since.UTC()
	return &r, nil
}

func (d *statsDaemon) Hours(_ context.Context, since time.Time, jail string) (*control.HoursReply, error) {
	d.record("hours since " + since.UTC().Format(time.RFC3339) + " jail " + jail)
	if d.err != nil {
		return nil, d.err
	}
	first := since.UTC().Truncate(time.Hour)
	out := &control.HoursReply{Since: first}
	for _, b := range d.bans {
		if !b.Hour.Before(first) && (jail == "" || b.Jail == jail) {
			out.Bans = append(out.Bans, b)
		}
	}
	return out, nil
}

// serveStats serves d on a fresh socket until the test ends.
func serveStats(t *testing.T, d *statsDaemon) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "banwatch.sock")
	l, err := control.Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.NewServer(d, slog.New(slog.DiscardHandler)).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return path
}

// at sets banctl's clock and time zone for a test.
func at(t *testing.T, clock time.Time, name string) {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	oldNow, oldZone := now, zone
	now, zone = func() time.Time { return clock }, loc
	t.Cleanup(func() { now, zone = oldNow, oldZone })
}

// golden compares out with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, out string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it):\n%s", path, t.Name(), out)
	}
}

// wave is a week of bans per hour, ending 2026-11-28 12:00 UTC: a few an
// hour in postfix, quiet nights, a wave on the 24th from 02:00 to 06:00
// UTC in two jails, and bans before the week (which a chart of it must
// not count).
func wave() []control.BanHour {
	var out []control.BanHour
	add := func(h time.Time, jail string, n int) {
		out = append(out, control.BanHour{Hour: h, Jail: jail, Bans: n})
	}
	start := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for h := start; !h.After(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)); h = h.Add(time.Hour) {
		if h.Hour() >= 1 && h.Hour() < 6 && h.Day() != 24 {
			continue // quiet nights: no bans
		}
		add(h, "postfix", 1+h.Hour()%3)
	}
	for i, n := range []int{10, 50, 200, 400, 120} {
		h := time.Date(2026, 11, 24, 2+i, 0, 0, 0, time.UTC)
		add(h, "postfix", n)
		add(h, "manual", i) // i = 0: a zero count, as a daemon never sends
	}
	return out
}

func TestChart(t *testing.T) {
	nov28 := time.Date(2026, 11, 28, 12, 34, 56, 0, time.UTC)
	// Summer time ends in Berlin on 2026-10-25: 03:00 CEST is 02:00
	// CET, and the hour from 02:00 is lived twice (00:00 and 01:00 UTC).
	oct26 := time.Date(2026, 10, 26, 10, 20, 0, 0, time.UTC)
	var dst []control.BanHour
	for h := time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC); h.Before(oct26); h = h.Add(time.Hour) {
		dst = append(dst, control.BanHour{Hour: h, Jail: "postfix", Bans: 2})
	}
	dst = append(dst, control.BanHour{Hour: time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), Jail: "exim", Bans: 6},
		control.BanHour{Hour: time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), Jail: "exim", Bans: 6})
	tests := []struct {
		name   string
		clock  time.Time
		zone   string
		bans   []control.BanHour
		args   []string
		asked  string
		golden string
	}{
		{"week", nov28, "UTC", wave(), nil, "hours since 2026-11-21T12:34:56Z jail ", "chart-week.golden"},
		{"week in a jail", nov28, "UTC", wave(), []string{"--jail", "manual"}, "hours since 2026-11-21T12:34:56Z jail manual", "chart-week-manual.golden"},
		{"a day and a half, across midnight", nov28, "UTC", wave(), []string{"--since", "36h", "--jail", "postfix"},
			"hours since 2026-11-27T00:34:56Z jail postfix", "chart-36h.golden"},
		{"a day in New York", nov28, "America/New_York", wave(), []string{"--since", "1d"}, "hours since 2026-11-27T12:34:56Z jail ", "chart-day-new-york.golden"},
		{"empty week", nov28, "UTC", nil, []string{"--since", "3d"}, "hours since 2026-11-25T12:34:56Z jail ", "chart-empty-week.golden"},
		{"empty day", nov28, "UTC", nil, []string{"--since", "12h"}, "hours since 2026-11-28T00:34:56Z jail ", "chart-empty-day.golden"},
		{"end of summer time", oct26, "Europe/Berlin", dst, []string{"--since", "3d"}, "hours since 2026-10-23T10:20:00Z jail ", "chart-dst.golden"},
		{"half-hour zone", oct26, "Asia/Kolkata", dst, []string{"--since", "3d"}, "hours since 2026-10-23T10:20:00Z jail ", "chart-kolkata.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at(t, tt.clock, tt.zone)
			d := &statsDaemon{bans: tt.bans}
			sock := serveStats(t, d)
			code, out, errOut := runBanctl(t, "", append([]string{"history", "--chart", "--socket", sock}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if len(d.asked) != 1 || d.asked[0] != tt.asked {
				t.Errorf("the daemon was asked %q, want %q", d.asked, tt.asked)
			}
			golden(t, tt.golden, out)
		})
	}
}

func TestChartJSON(t *testing.T) {
	at(t, time.Date(2026, 11, 28, 12, 34, 56, 0, time.UTC), "UTC")
	sock := serveStats(t, &statsDaemon{bans: wave()})
	code, out, errOut := runBanctl(t, "", "history", "--chart", "--socket", sock, "--since", "2h", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `{"since":"2026-11-28T10:00:00Z","bans":[{"hour":"2026-11-28T10:00:00Z","jail":"postfix","bans":2},` +
		`{"hour":"2026-11-28T11:00:00Z","jail":"postfix","bans":3},{"hour":"2026-11-28T12:00:00Z","jail":"postfix","bans":1}],"events":[]}` + "\n"
	if out != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestTop(t *testing.T) {
	at(t, time.Date(2026, 11, 28, 12, 34, 56, 0, time.UTC), "Europe/Berlin")
	reply := &control.TopReply{
		Bans: 1204,
		Addresses: []control.Count{{Key: "185.220.101.7", Bans: 41}, {Key: "2001:db8:4:7::/64", Bans: 17},
			{Key: "198.51.100.0/24", Bans: 9}, {Key: "203.0.113.250", Bans: 3}},
		Nets24:       []control.Count{{Key: "185.220.101.0/24", Bans: 388}, {Key: "45.148.10.0/24", Bans: 120}},
		Nets64:       []control.Count{},
		Jails:        []control.Count{{Key: "postfix", Bans: 1100}, {Key: "dovecot", Bans: 95}, {Key: "manual", Bans: 9}},
		Fingerprints: []control.Count{{Key: "instant helo=ylmf-pc", Bans: 512}, {Key: "fingerprint helo=win-clj1b0gq6jp.domain", Bans: 77}},
	}
	for _, tt := range []struct {
		name   string
		reply  *control.TopReply
		args   []string
		asked  string
		golden string
	}{
		{"defaults", reply, nil, "top since 2026-11-27T12:34:56Z n 10", "top.golden"},
		{"nothing", &control.TopReply{}, []string{"--since", "2h", "-n", "3"}, "top since 2026-11-28T10:34:56Z n 3", "top-empty.golden"},
		{"json", reply, []string{"--since", "30d", "--json"}, "top since 2026-10-29T12:34:56Z n 10", "top.json.golden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &statsDaemon{top: tt.reply}
			sock := serveStats(t, d)
			code, out, errOut := runBanctl(t, "", append([]string{"top", "--socket", sock}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if len(d.asked) != 1 || d.asked[0] != tt.asked {
				t.Errorf("the daemon was asked %q, want %q", d.asked, tt.asked)
			}
			golden(t, tt.golden, out)
		})
	}
}

// TestStatsErrors: bad usage exits 2 without asking the daemon; the
// daemon's refusal exits 1 with its reason.
func TestStatsErrors(t *testing.T) {
	d := &statsDaemon{err: control.Errorf(http.StatusBadRequest, "n: want a number from 1 to 1000, got \"5000\"")}
	sock := serveStats(t, d)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"top n 0", []string{"top", "-n", "0"}, 2, "banctl top: -n 0: want 1 to 1000"},
		{"top bad since", []string{"top", "--since", "yesterday"}, 2, "banctl top: --since: "},
		{"top argument", []string{"top", "postfix"}, 2, "wrong number of arguments"},
		{"chart of an address", []string{"history", "--chart", "192.0.2.1"}, 2, "--chart counts the bans of every address; it takes no ADDR|CIDR"},
		{"chart bad since", []string{"history", "--chart", "--since", "-1"}, 2, "banctl history: --since: "},
		{"refused top", []string{"top"}, 1, `banctl top: n: want a number from 1 to 1000, got "5000"`},
		{"refused chart", []string{"history", "--chart"}, 1, `banctl history: n: want`},
		{"unreachable", []string{"top", "--socket", filepath.Join(t.TempDir(), "none.sock")}, 2, "is banwatchd running?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d.asked = nil
			args := tt.args
			if !slices.Contains(args, "--socket") {
				args = append(args, "--socket", sock)
			}
			code, _, errOut := runBanctl(t, "", args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d %q, want %d with %q", code, errOut, tt.code, tt.want)
			}
			if tt.code == 2 && len(d.asked) != 0 {
				t.Errorf("the daemon was asked %q", d.asked)
			}
		})
	}
}
