package main

// banctl import fail2ban against the real daemon in a network namespace:
// the bans of a database made by fail2ban's own code land in the kernel's
// sets of the right jails with about the time fail2ban had left them.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/fail2ban/fail2bantest"
)

// wantBan is what a fail2ban ban should become: its banwatch jail and
// about the time left ("" for skipped).
type wantBan struct {
	jail string
	left time.Duration
}

func TestImportFail2banIntoKernel(t *testing.T) {
	needRoot(t)
	now := time.Now().Unix()
	var bans []fail2bantest.Ban
	want := map[string]wantBan{}
	add := func(jail, ip string, ago, banTime time.Duration, perm bool, bwJail string, left time.Duration) {
		b := fail2bantest.Ban{Jail: jail, IP: ip, Time: now - int64(ago/time.Second), BanTime: fail2bantest.Seconds(banTime), Count: 1}
		if perm {
			b.BanTime = fail2bantest.Permanent
		}
		bans = append(bans, b)
		want[ip+" "+bwJail] = wantBan{bwJail, left}
	}
	for i := range 100 { // mapped to the running postfix jail by the shipped table
		add("postfix-sasl", fmt.Sprintf("203.0.113.%d", i+1), time.Hour, 6*time.Hour, false, "postfix", 5*time.Hour)
	}
	for i := range 50 { // banwatch's dovecot jail does not run here: manual
		add("dovecot", fmt.Sprintf("198.51.100.%d", i+1), 10*time.Minute, time.Hour, false, "manual", 50*time.Minute)
	}
	for i := range 50 { // permanent
		add("recidive", fmt.Sprintf("198.18.0.%d", i+1), 48*time.Hour, 0, true, "manual", 3650*24*time.Hour-48*time.Hour) // ten years from fail2ban's ban time
	}
	for i := range 50 { // IPv6, mapped by --jail
		add("nginx-http-auth", fmt.Sprintf("2001:db8::%x", i+1), time.Minute, 24*time.Hour, false, "postfix", 24*time.Hour-time.Minute)
	}
	for i := range 50 { // expired
		add("sshd", fmt.Sprintf("198.18.1.%d", i+1), 2*time.Hour, time.Hour, false, "", 0)
	}
	db := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	fail2bantest.Create(t, db, bans)

	e := newEnv(t, newNetns(t), "")
	e.start()
	start := time.Now()
	code, out, errs := e.banctl("import", "fail2ban", "--db", db, "--jail", "nginx-http-auth=postfix")
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, "imported 250 bans") || !strings.Contains(out, "50 expired") {
		t.Fatalf("import: %d\n%s%s", code, out, errs)
	}
	t.Logf("banctl import fail2ban of %d bans: %v\n%s", len(bans), took.Round(time.Millisecond), out)

	// The kernel holds each with about the time left.
	sets := map[string]map[string]element{}
	for _, kind := range []string{"postfix_v4", "postfix_v6", "manual_v4", "manual_v6"} {
		sets[kind] = e.setElements(kind)
	}
	inKernel := 0
	for key, w := range want {
		ip, _, _ := strings.Cut(key, " ")
		if w.jail == "" {
			for kind, els := range sets {
				if _, ok := els[ip]; ok {
					t.Errorf("expired %s is in %s", ip, kind)
				}
			}
			continue
		}
		kind := w.jail + "_v4"
		if strings.Contains(ip, ":") {
			kind = w.jail + "_v6"
		}
		el, ok := sets[kind][ip]
		if !ok {
			t.Errorf("%s is not in %s", ip, kind)
			continue
		}
		inKernel++
		if el.Expires > w.left+time.Second || el.Expires < w.left-time.Minute {
			t.Errorf("%s in %s expires in %v, want about %v", ip, kind, el.Expires, w.left)
		}
	}
	if inKernel != 250 {
		t.Errorf("%d bans in the kernel, want 250", inKernel)
	}

	// banctl list agrees, with the reasons.
	code, out, _ = e.banctl("list", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 250 {
		t.Fatalf("list: %d, %d bans", code, len(lines))
	}
	for _, l := range lines {
		var b struct {
			IP, Jail, Reason string
			Since, Until     time.Time
		}
		if err := json.Unmarshal([]byte(l), &b); err != nil {
			t.Fatal(err)
		}
		w, ok := want[b.IP+" "+b.Jail]
		if !ok || w.jail == "" {
			t.Errorf("listed %s in %s", b.IP, b.Jail)
			continue
		}
		if left := b.Until.Sub(b.Since); left > w.left+time.Second || left < w.left-time.Minute ||
			!strings.HasPrefix(b.Reason, "imported from fail2ban (jail ") {
			t.Errorf("listed %s: %v left, reason %q; want %v", b.IP, left, b.Reason, w.left)
		}
	}

	// Again: nothing changes.
	code, out, _ = e.banctl("import", "fail2ban", "--db", db, "--jail", "nginx-http-auth=postfix")
	if code != 0 || !strings.Contains(out, "imported 0 bans") {
		t.Errorf("again: %d\n%s", code, out)
	}
}

// 20,000 bans: how long the import takes, into the kernel.
func TestImportFail2ban20000(t *testing.T) {
	needRoot(t)
	const n = 20000
	now := time.Now().Unix()
	bans := make([]fail2bantest.Ban, n)
	for i := range bans {
		bans[i] = fail2bantest.Ban{Jail: "postfix-sasl", IP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			Time: now - 60, BanTime: fail2bantest.Seconds(24 * time.Hour), Count: 1 + i%5}
	}
	db := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	fail2bantest.Create(t, db, bans)
	e := newEnv(t, newNetns(t), "")
	e.start()
	start := time.Now()
	code, out, errs := e.banctl("import", "fail2ban", "--db", db)
	took := time.Since(start)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("imported %d bans", n)) {
		t.Fatalf("import: %d\n%s%s", code, out, errs)
	}
	if got := len(e.setElements("postfix_v4")); got != n {
		t.Errorf("%d addresses in the kernel, want %d", got, n)
	}
	// Logged for the reader, not judged: timings belong to benchmarks.
	t.Logf("banctl import fail2ban of %d bans, into SQLite and the kernel: %v", n, took.Round(time.Millisecond))
}
