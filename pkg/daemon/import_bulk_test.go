package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// startIgnoring starts a daemon whose [daemon] ignore holds 192.0.2.0/24.
func startIgnoring(t *testing.T) (*testEnv, *control.Client, func()) {
	e := newEnv(t)
	e.setDaemon("ignore = [\"192.0.2.0/24\"]\n")
	stop := e.start()
	return e, e.client(), stop
}

// A bulk ban checks each entry as a manual ban is checked, refuses the bad
// ones alone, and makes the rest; sent again, entries with the same end
// change nothing.
func TestImportBulkBan(t *testing.T) {
	e, c, stop := startIgnoring(t)
	defer stop()
	ctx := context.Background()
	if _, err := c.Ban(ctx, control.BanRequest{IP: "203.0.113.50", Jail: "postfix", For: "30d"}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	cases := []struct {
		entry control.BulkBan
		code  string // "" banned
		jail  string
		left  time.Duration // for a ban: about this long
	}{
		{control.BulkBan{IP: "203.0.113.1", Until: until, Reason: "imported"}, "", "manual", 2 * time.Hour},
		{control.BulkBan{IP: "2001:db8::1", Jail: "postfix", For: "1d"}, "", "postfix", 24 * time.Hour},
		{control.BulkBan{IP: "198.51.100.0/24"}, "", "manual", config.DefaultBanTime},
		{control.BulkBan{IP: "203.0.113.2", Jail: "postfix"}, "", "postfix", config.DefaultBanTime},
		{control.BulkBan{IP: "203.0.113.300"}, control.RefusedInvalid, "manual", 0},
		{control.BulkBan{IP: "127.0.0.1"}, control.RefusedLoopback, "manual", 0},
		{control.BulkBan{IP: "::1", Jail: "postfix"}, control.RefusedLoopback, "postfix", 0},
		{control.BulkBan{IP: "192.0.2.7"}, control.RefusedIgnored, "manual", 0},
		{control.BulkBan{IP: "203.0.113.3", Jail: "nope"}, control.RefusedUnknownJail, "nope", 0},
		{control.BulkBan{IP: "203.0.113.4", Until: time.Now().Add(-time.Minute)}, control.RefusedInvalid, "manual", 0},
		{control.BulkBan{IP: "203.0.113.5", Until: until, For: "1d"}, control.RefusedInvalid, "manual", 0},
		{control.BulkBan{IP: "203.0.113.6", For: "forever"}, control.RefusedInvalid, "manual", 0},
		{control.BulkBan{IP: "203.0.113.1", Until: until.Add(time.Hour)}, control.RefusedDuplicate, "manual", 0},
		{control.BulkBan{IP: "203.0.113.50", Jail: "postfix", For: "1d"}, control.RefusedBanned, "postfix", 0},
		{control.BulkBan{IP: "203.0.113.50", For: "1d"}, "", "manual", 24 * time.Hour}, // another jail
	}
	req := control.BulkBanRequest{}
	for _, tc := range cases {
		req.Bans = append(req.Bans, tc.entry)
	}
	check := func(what string, rep *control.BulkBanReply, err error, again bool) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		refused := map[int]control.Refusal{}
		for _, r := range rep.Refused {
			refused[r.Index] = r
		}
		made := map[string]control.Ban{}
		for _, b := range rep.Bans {
			made[b.IP+" "+b.Jail] = b
		}
		for i, tc := range cases {
			code := tc.code
			if again && code == "" && !tc.entry.Until.IsZero() {
				// The same end again; a relative one ends later and
				// replaces the first ban.
				code = control.RefusedBanned
			}
			r, isRefused := refused[i]
			switch {
			case code != "" && (!isRefused || r.Code != code || r.Jail != tc.jail || r.IP != tc.entry.IP || r.Reason == ""):
				t.Errorf("%s: entry %d %+v: refusal %+v, want %s", what, i, tc.entry, r, code)
			case code == "" && isRefused:
				t.Errorf("%s: entry %d %+v refused: %+v", what, i, tc.entry, r)
			case code == "":
				b, ok := made[tc.entry.IP+" "+tc.jail]
				if left := b.Until.Sub(b.Since); !ok || left < tc.left-5*time.Second || left > tc.left+time.Second {
					t.Errorf("%s: entry %d: ban %+v, want %v in %s", what, i, b, tc.left, tc.jail)
				}
			}
		}
		t.Logf("%s: %d banned, %d refused", what, len(rep.Bans), len(rep.Refused))
	}

	rep, err := c.BulkBan(ctx, control.BulkBanRequest{Bans: req.Bans, DryRun: true})
	check("dry run", rep, err, false)
	if n := len(listAll(t, c, "", "")); n != 1 {
		t.Fatalf("the dry run banned: %d bans", n)
	}
	rep, err = c.BulkBan(ctx, req)
	check("bulk ban", rep, err, false)
	if n := len(listAll(t, c, "", "")); n != 6 {
		t.Errorf("%d active bans, want 6", n)
	}
	if b := e.waitBanned("203.0.113.1"); b.Reason != "imported" || !b.End.Equal(until) {
		t.Errorf("stored: %+v", b)
	}
	rep, err = c.BulkBan(ctx, req)
	check("again", rep, err, true)
	if n := len(listAll(t, c, "", "")); n != 6 {
		t.Errorf("after the second request: %d active bans, want 6", n)
	}
	// With force, the ignored address is banned; loopback never is.
	rep, err = c.BulkBan(ctx, control.BulkBanRequest{Force: true, Bans: []control.BulkBan{{IP: "192.0.2.7"}, {IP: "127.0.0.2"}}})
	if err != nil || len(rep.Bans) != 1 || len(rep.Refused) != 1 || rep.Refused[0].Code != control.RefusedLoopback {
		t.Errorf("force: %+v %v", rep, err)
	}
}

// The jails learn of bulk bans: strikes of an imported address in its jail
// make no second ban.
func TestImportBulkBanMarksJail(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	rep, err := c.BulkBan(context.Background(), control.BulkBanRequest{Bans: []control.BulkBan{{IP: "203.0.113.9", Jail: "postfix", For: "1d"}}})
	if err != nil || len(rep.Bans) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	e.appendLines(failures("203.0.113.9", 5)...)
	e.appendLines(failures("203.0.113.10", 5)...)
	e.waitBanned("203.0.113.10")
	if h := e.history("203.0.113.9"); len(h) != 1 {
		t.Errorf("the imported address was banned again: %+v", h)
	}
}

// Requests beyond the limits are refused whole.
func TestImportBulkBanLimits(t *testing.T) {
	_, c, stop := startWithClient(t)
	defer stop()
	req := control.BulkBanRequest{Bans: make([]control.BulkBan, control.MaxBulk+1)}
	for i := range req.Bans {
		req.Bans[i].IP = "203.0.113.1"
	}
	_, err := c.BulkBan(context.Background(), req)
	wantRefusal(t, "too many", err, 413, "send them in parts")
}

// 20,000 bans in one request, with the log firewall: the store's side.
func TestImportBulkBan20000(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: skipped with -short")
	}
	_, c, stop := startWithClient(t)
	defer stop()
	req := control.BulkBanRequest{Bans: make([]control.BulkBan, 20000)}
	until := time.Now().Add(24 * time.Hour)
	for i := range req.Bans {
		req.Bans[i] = control.BulkBan{IP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), Until: until,
			Reason: "imported from fail2ban (jail postfix-sasl, banned at 2026-11-28 02:00:19 UTC, 3 times)"}
	}
	start := time.Now()
	rep, err := c.BulkBan(context.Background(), req)
	took := time.Since(start)
	if err != nil || len(rep.Bans) != 20000 || len(rep.Refused) != 0 {
		t.Fatalf("%d bans, %d refused, %v", len(rep.Bans), len(rep.Refused), err)
	}
	t.Logf("20000 bans in one request: %v", took.Round(time.Millisecond))
}
