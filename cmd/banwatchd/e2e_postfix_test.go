package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startPostfix runs, in the lab's server namespace, a private Dovecot for
// SASL and a private Postfix 3.7 instance: postscreen on port 25, plain
// smtpd on 2525, helo restrictions, Dovecot SASL, and its own log file.
func (l *mailLab) startPostfix() {
	l.t.Helper()
	d := l.dir
	for _, sub := range []string{"postfix", "spool", "data", "log", "dovecot-run", "dovecot-state"} {
		if err := os.MkdirAll(l.path(sub), 0o755); err != nil {
			l.t.Fatal(err)
		}
	}
	// Dovecot, for SASL only: no protocols, verbose auth, no penalty.
	l.write("dovecot.conf", fmt.Sprintf(`protocols =
base_dir = %[1]s/dovecot-run
state_dir = %[1]s/dovecot-state
log_path = %[1]s/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`, d))
	l.write("passwd", "alice@example.test:{PLAIN}secret\n")
	sh(l.t, "chown", "root:dovecot", l.path("passwd"))
	os.Chmod(l.path("passwd"), 0o640)
	dovecot := l.srv.command("dovecot", "-F", "-c", l.path("dovecot.conf"))
	if err := dovecot.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { dovecot.Process.Kill(); dovecot.Wait() })

	l.write("postfix/main.cf", fmt.Sprintf(`compatibility_level = 3.6
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination = example.test
local_recipient_maps =
local_transport = discard:delivered
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
queue_directory = %[1]s/spool
data_directory = %[1]s/data
maillog_file = %[1]s/log/postfix.log
maillog_file_prefixes = /var, /dev/stdout, %[1]s
smtpd_banner = $myhostname ESMTP
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = %[1]s/dovecot-run/auth-postfix
smtpd_sasl_security_options = noanonymous
broken_sasl_auth_clients = yes
postscreen_greet_wait = 1s
postscreen_greet_action = enforce
postscreen_dnsbl_sites =
alias_maps =
alias_database =
biff = no
`, d))
	master, err := os.ReadFile("/usr/share/postfix/master.cf.dist")
	if err != nil {
		l.t.Skipf("Debian's postfix package is incomplete: %v", err)
	}
	l.write("postfix/master.cf", postfixMaster(string(master)))
	sh(l.t, "ip", "netns", "exec", l.srv.name, "postfix", "-c", l.path("postfix"), "set-permissions", "create-missing")
	sh(l.t, "ip", "netns", "exec", l.srv.name, "postfix", "-c", l.path("postfix"), "check")
	pf := l.srv.command("postfix", "-c", l.path("postfix"), "start-fg")
	if err := pf.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		exec.Command("ip", "netns", "exec", l.srv.name, "postfix", "-c", l.path("postfix"), "stop").Run()
		done := make(chan struct{})
		go func() { pf.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			pf.Process.Kill()
		}
	})
	// Ready when both ports answer.
	deadline := time.Now().Add(15 * time.Second)
	for _, port := range []int{25, 2525} {
		for !l.portOpen(port) {
			if time.Now().After(deadline) {
				l.t.Fatalf("postfix does not listen on %d:\n%s", port, readTail(l.path("log", "postfix.log")))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// postfixMaster turns Debian's master.cf into the lab's: postscreen on
// port 25 handing over to smtpd, plain smtpd on 2525, nothing chrooted.
func postfixMaster(dist string) string {
	var out []string
	for _, line := range strings.Split(dist, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
			if f[0] == "smtp" && f[1] == "inet" {
				out = append(out,
					"smtp      inet  n       -       n       -       1       postscreen",
					"smtpd     pass  -       -       n       -       -       smtpd",
					"2525      inet  n       -       n       -       -       smtpd")
				continue
			}
			f[4] = "n" // chroot
			line = strings.Join(f, "  ")
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// portOpen reports whether the server accepts connections on port, from
// the server's own namespace.
func (l *mailLab) portOpen(port int) bool {
	return exec.Command("ip", "netns", "exec", l.srv.name, "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", labServer, port)).Run() == nil
}

func readTail(path string) string {
	data, _ := os.ReadFile(path)
	return tail(string(data), 30)
}

// The botnet against Postfix with postscreen and Dovecot SASL: AUTH LOGIN
// guessing after EHLO ylmf-pc, pregreet, bad HELO; a legitimate client that
// authenticates and sends mail throughout.
func TestE2EPostfix(t *testing.T) {
	needMailLab(t, "postfix", "dovecot", "swaks")
	l := newMailLab(t)
	start := time.Now()
	l.startPostfix()
	l.startBanwatchd()
	t.Logf("postfix, dovecot and banwatchd up in %v", time.Since(start).Round(time.Millisecond))

	legit := l.client(20)
	send := func(port int) {
		t.Helper()
		out, err := l.swaks("--server", fmt.Sprintf("%s:%d", labServer, port), "--local-interface", legit,
			"--ehlo", "client.example.net", "--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password", "secret",
			"--from", "alice@example.test", "--to", "bob@example.test")
		if err != nil || !strings.Contains(out, "250 2.0.0 Ok: queued") {
			t.Fatalf("the legitimate client cannot send on port %d: %v\n%s", port, err, out)
		}
	}
	send(2525)
	send(25)

	auth := l.client(10)
	l.attackUntilBanned("postfix AUTH LOGIN", auth, "postfix", 10, func(i int) bool { return l.authLoginAttack(auth, 25, i) })
	l.checkBanned(auth, "postfix", "auth_failure", "SASL LOGIN authentication failed")

	pre := l.client(11)
	l.attackUntilBanned("postfix pregreet", pre, "postfix", 3, func(int) bool { return l.pregreet(pre, 25) })
	l.checkBanned(pre, "postfix", "pregreet", "PREGREET")

	// EHLO ylmf-pc is the botnet's fingerprint: banned at once.
	ylmf := l.client(13)
	l.attackUntilBanned("postfix EHLO ylmf-pc", ylmf, "postfix", 1, func(int) bool { return l.badHelo(ylmf, 2525) })
	l.checkBanned(ylmf, "postfix", "instant helo=ylmf-pc", "<ylmf-pc>: Helo command rejected")

	// Another name that is no hostname: bad_helo weighs 2, so 3 tries.
	helo := l.client(12)
	l.attackUntilBanned("postfix bad HELO", helo, "postfix", 6, func(int) bool { return l.badHeloAs(helo, 2525, "mailer") })
	l.checkBanned(helo, "postfix", "bad_helo", "Helo command rejected: need fully-qualified hostname")

	send(2525)
	send(25)
	l.checkNeverBanned(legit)
	// The mail was delivered (to the discard transport).
	if log, _ := os.ReadFile(l.path("log", "postfix.log")); strings.Count(string(log), "status=sent (delivered)") < 4 {
		t.Errorf("the legitimate client's mail was not delivered four times:\n%s", tail(string(log), 20))
	}

	l.restartAndFlush(map[string]string{auth: "postfix", pre: "postfix", helo: "postfix", ylmf: "postfix"})
	if l.gotBanner(auth, 25) {
		t.Error("after the restart the attacker connects again")
	}
	send(2525)
	l.checkNeverBanned(legit)
}
