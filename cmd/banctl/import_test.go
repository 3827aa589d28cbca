package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/daemon"
	"github.com/banwatch/banwatch/pkg/fail2ban/fail2bantest"
)

// startDaemon runs banwatchd in-process with the log firewall (no root),
// the postfix jail running and 192.0.2.0/24 ignored, and returns its
// socket.
func startDaemon(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	testutil.PostfixConfig(t, dir, "firewall = \"log\"\nignore = [\"192.0.2.0/24\"]\n")
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready in 10s")
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cfg.Daemon.Socket
}

func TestImportFail2ban(t *testing.T) {
	now := time.Now().Unix()
	hour := fail2bantest.Seconds(time.Hour)
	path := filepath.Join(t.TempDir(), "fail2ban.sqlite3")
	fail2bantest.Create(t, path, []fail2bantest.Ban{
		{Jail: "postfix-sasl", IP: "203.0.113.1", Time: now - 60, BanTime: hour, Count: 2},
		{Jail: "postfix-sasl", IP: "203.0.113.2", Time: now - 7200, BanTime: hour, Count: 1}, // expired
		{Jail: "postfix-sasl", IP: "192.0.2.9", Time: now - 60, BanTime: hour, Count: 1},     // ignored
		{Jail: "sshd", IP: "203.0.113.1", Time: now - 60, BanTime: fail2bantest.Permanent, Count: 4},
		{Jail: "sshd", IP: "::1", Time: now - 60, BanTime: hour, Count: 1}, // loopback
		{Jail: "sshd", IP: "bogus", Time: now - 60, BanTime: hour, Count: 1},
		{Jail: "nginx-http-auth", IP: "2001:db8::5", Time: now - 60, BanTime: hour, Count: 1},
	})
	sock := startDaemon(t)
	cases := []struct {
		name string
		args []string
		code int
		want []string // in stdout, or stderr when code != 0
		bans int      // active bans after
	}{
		{"dry run", []string{"--dry-run"}, 0, []string{
			"fail2ban database " + path + " (schema 4): 7 bans in 3 jails",
			"postfix-sasl     postfix", "1 expired, 1 on an ignore list",
			"sshd             manual (banwatch's jail sshd does not run: every port)",
			"skipped ::1 (fail2ban jail sshd): ::1/128 is or holds a loopback address",
			`skipped bogus (fail2ban jail sshd): "bogus" is not an address`,
			"skipped 192.0.2.9 (fail2ban jail postfix-sasl): 192.0.2.9/32 is not banned: it overlaps 192.0.2.0/24",
			"would import 3 bans (dry run: nothing changed) (1 permanent in fail2ban, here for 3650d)",
		}, 0},
		{"import", []string{"--jail", "nginx-http-auth=postfix"}, 0, []string{"nginx-http-auth  postfix ", "imported 3 bans in "}, 3},
		{"again", []string{"--jail", "nginx-http-auth=postfix"}, 0, []string{"1 already banned as long", "imported 0 bans"}, 3},
		{"unknown target", []string{"--jail", "sshd=sshd"}, 2, []string{`--jail sshd=sshd: no jail "sshd" is running (jails: postfix, manual)`}, 3},
		{"bad map", []string{"--jail", "sshd"}, 2, []string{"want F2B=BW"}, 3},
		{"no database", []string{"--db", path + ".none"}, 2, []string{"fail2ban: stat " + path + ".none: no such file"}, 3},
		{"bad duration", []string{"--permanent-for", "ever"}, 2, []string{`--permanent-for: "ever"`}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"import", "fail2ban", "--socket", sock, "--db", path}, c.args...)
			code, out, errOut := runBanctl(t, "", args...)
			text := out
			if c.code != 0 {
				text = errOut
			}
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("no %q in\n%s", w, text)
				}
			}
			_, list, _ := runBanctl(t, "", "list", "--socket", sock)
			if !strings.Contains(list, fmt.Sprintf("%d active bans", c.bans)) {
				t.Errorf("list:\n%s", list)
			}
		})
	}
	_, list, _ := runBanctl(t, "", "list", "--socket", sock, "--json")
	var perm struct {
		Since, Until time.Time
		Jail, Reason string
	}
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		if strings.Contains(l, `"jail":"manual"`) {
			json.Unmarshal([]byte(l), &perm)
		}
	}
	// Ten years from fail2ban's ban time, a minute ago.
	if d := perm.Until.Sub(perm.Since); d < 3650*24*time.Hour-2*time.Minute || d > 3650*24*time.Hour || !strings.HasPrefix(perm.Reason, "imported from fail2ban (jail sshd, banned at ") ||
		!strings.HasSuffix(perm.Reason, ", 4 times; permanent there)") {
		t.Errorf("the permanent ban: %+v", perm)
	}

	code, out, errOut := runBanctl(t, "", "import", "fail2ban", "--socket", sock, "--db", path, "--json", "--jail", "nginx-http-auth=postfix")
	if code != 0 {
		t.Fatalf("--json: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7+3+1 || !strings.Contains(lines[0], `"type":"ban"`) || !strings.Contains(out, `"result":"skipped","skip":"banned_longer"`) ||
		!strings.HasPrefix(lines[len(lines)-1], `{"bans":7,"db":`) {
		t.Errorf("--json:\n%s", out)
	}
}

func TestImportUnreachable(t *testing.T) {
	code, _, errOut := runBanctl(t, "", "import", "fail2ban", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 2 || !strings.Contains(errOut, "is banwatchd running?") {
		t.Errorf("%d %s", code, errOut)
	}
	code, _, errOut = runBanctl(t, "", "import", "denyhosts")
	if code != 2 || !strings.Contains(errOut, "only fail2ban can be imported") {
		t.Errorf("%d %s", code, errOut)
	}
}
