package main

// The end-to-end test of Exim: Debian's exim4-daemon-light, unpacked from its
// .deb next to the installed Postfix (the two packages conflict), runs as a
// daemon in the lab's server namespace and is attacked for real; banwatchd
// reads Exim's own main log.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
)

const (
	// eximCache keeps the unpacked exim4-daemon-light between runs.
	eximCache = "/var/cache/banwatch-test/exim"
	// eximTrustedConfigs is the TRUSTED_CONFIG_LIST Debian's Exim is built
	// with: the processes Exim re-executes for deliveries, as its own user,
	// accept the -C configuration only when it is listed there (else
	// "exim user lost privilege for using -C option" in the panic log).
	eximTrustedConfigs = "/etc/exim4/trusted_configs"
	eximUser           = "Debian-exim" // Debian's build has it compiled in
)

// eximBinary returns Debian's exim4 binary, downloading exim4-daemon-light
// with apt-get and unpacking it into eximCache when it is not there yet. It
// skips the test when the package cannot be had.
func eximBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(eximCache, "root", "usr", "sbin", "exim4")
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		// No set-uid root Exim lying in a cache: the test runs the daemon
		// as root, and its deliveries run as the Exim user.
		os.Chmod(bin, 0o755)
		return bin
	}
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to fetch Debian's exim4-daemon-light", tool)
		}
	}
	if err := os.MkdirAll(eximCache, 0o755); err != nil {
		t.Skipf("cannot make the Exim cache %s: %v", eximCache, err)
	}
	tmp, err := os.MkdirTemp(eximCache, "fetch")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	// Exim conflicts with the installed Postfix as a package: fetch the
	// .deb and unpack it, without installing it.
	dl := exec.Command("apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", "exim4-daemon-light")
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("cannot fetch Debian's exim4-daemon-light (apt-get download: %v; try apt-get update):\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "exim4-daemon-light_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download left %v in %s", debs, tmp)
	}
	root := filepath.Join(tmp, "root")
	sh(t, "dpkg-deb", "-x", debs[0], root)
	// Another test process may have unpacked it meanwhile: either copy will do.
	if err := os.Rename(root, filepath.Join(eximCache, "root")); err != nil {
		if _, err2 := os.Stat(bin); err2 != nil {
			t.Fatalf("moving the unpacked Exim into %s: %v", eximCache, err)
		}
	}
	os.Chmod(bin, 0o755)
	t.Logf("unpacked %s into %s", filepath.Base(debs[0]), eximCache)
	return bin
}

// eximSystemUser makes Debian's Exim user when missing (the package's
// postinst would), and returns its uid and gid.
func eximSystemUser(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup(eximUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", eximUser).CombinedOutput(); err != nil {
			t.Skipf("cannot make the %s user Exim runs as: %v\n%s", eximUser, err, out)
		}
		if u, err = user.Lookup(eximUser); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// eximTrust lists conf in Exim's trusted configurations until the test
// ends. The list is shared by the test processes that may run at once: each
// adds and removes its own line under a lock, and the last one removes the
// file (and /etc/exim4 when it is left empty).
func eximTrust(t *testing.T, conf string) {
	t.Helper()
	edit := func(change func(lines []string) []string) error {
		lock, err := os.OpenFile(filepath.Join(eximCache, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			return err
		}
		data, err := os.ReadFile(eximTrustedConfigs)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var lines []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(line) != "" {
				lines = append(lines, line)
			}
		}
		lines = change(lines)
		if len(lines) == 0 {
			os.Remove(eximTrustedConfigs)
			os.Remove(filepath.Dir(eximTrustedConfigs)) // only when empty
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(eximTrustedConfigs), 0o755); err != nil {
			return err
		}
		// Exim ignores the list unless it is root's and only root may write it.
		tmp := eximTrustedConfigs + fmt.Sprintf(".%d", os.Getpid())
		if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		os.Chmod(tmp, 0o644) // past the umask
		return os.Rename(tmp, eximTrustedConfigs)
	}
	if err := edit(func(lines []string) []string { return append(lines, conf) }); err != nil {
		t.Fatalf("listing the lab's Exim configuration in %s: %v", eximTrustedConfigs, err)
	}
	t.Cleanup(func() {
		err := edit(func(lines []string) []string {
			var keep []string
			for _, line := range lines {
				if strings.TrimSpace(line) != conf {
					keep = append(keep, line)
				}
			}
			return keep
		})
		if err != nil {
			t.Errorf("removing the lab's Exim configuration from %s: %v", eximTrustedConfigs, err)
		}
	})
}

// eximConf is the lab's Exim configuration. Port 25 takes mail for
// example.test and wants a fully qualified HELO; port 587 is submission
// with plaintext AUTH (no TLS in the lab). A one-second greeting pause on
// port 25, as admins set it, lets smtp_enforce_sync catch the clients that
// talk first.
const eximConf = `# banwatch lab: Exim {{bin}}
exim_path = {{bin}}
primary_hostname = mx.example.test
keep_environment =
qualify_domain = example.test
domainlist local_domains = example.test
spool_directory = {{dir}}/spool
log_file_path = {{dir}}/log/exim-%s.log
pid_file_path = {{dir}}/exim.pid
local_interfaces = {{addr}}
daemon_smtp_ports = 25 : 587
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
# 4.96 offers early pipelining to all, which would hide the clients that
# talk before the greeting.
pipelining_connect_advertise_hosts =
auth_advertise_hosts = *
smtp_enforce_sync = true
log_selector = +smtp_protocol_error +smtp_syntax_error +incoming_port +incoming_interface
acl_smtp_connect = acl_connect
acl_smtp_helo = acl_helo
acl_smtp_rcpt = acl_rcpt

begin acl

acl_connect:
  accept condition = ${if ={$received_port}{25}}
         delay = 1s
  accept

acl_helo:
  deny   condition = ${if ={$received_port}{25}}
         condition = ${if match{$sender_helo_name}{\N^[^.]+$\N}}
         message = need fully-qualified hostname
  accept

acl_rcpt:
  accept authenticated = *
  require message = relay not permitted
          domains = +local_domains
  accept  local_parts = alice : bob

begin routers

local_user:
  driver = accept
  domains = +local_domains
  local_parts = alice : bob
  transport = local_file

begin transports

local_file:
  driver = appendfile
  file = {{dir}}/mail/${local_part_data}
  user = ` + eximUser + `
  mode = 0600

begin authenticators

PLAIN:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{alice@example.test}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2

LOGIN:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{alice@example.test}}{eq{$auth2}{secret}}}}
  server_set_id = $auth1
`

// eximDaemon is Exim running as a daemon in the lab's server namespace.
type eximDaemon struct {
	cmd    *exec.Cmd
	stderr testutil.Buffer
	done   chan struct{}
	log    string // the main log
}

// startExim configures Exim in the lab directory and runs its daemon in
// the foreground in the server namespace until the test ends; it returns
// when Exim listens.
func (l *mailLab) startExim() *eximDaemon {
	t := l.t
	t.Helper()
	bin := eximBinary(t)
	uid, gid := eximSystemUser(t)
	for _, d := range []string{"log", "spool", "mail"} {
		if err := os.MkdirAll(l.path(d), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(l.path(d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	conf := l.path("exim.conf")
	l.write("exim.conf", strings.NewReplacer("{{bin}}", bin, "{{dir}}", l.dir, "{{addr}}", labServer).Replace(eximConf))
	if out, err := exec.Command(bin, "-C", conf, "-bV").CombinedOutput(); err != nil {
		t.Skipf("the unpacked Exim does not run (its libraries: Debian packages libidn12 and the other dependencies of exim4-daemon-light): %v\n%s", err, out)
	}
	eximTrust(t, conf)

	x := &eximDaemon{done: make(chan struct{}), log: l.path("log", "exim-main.log")}
	x.cmd = l.srv.command(bin, "-C", conf, "-bdf")
	x.cmd.Stdout, x.cmd.Stderr = &x.stderr, &x.stderr
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := x.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		x.cmd.Wait()
		close(x.done)
	}()
	t.Cleanup(func() {
		x.stop()
		if t.Failed() {
			data, _ := os.ReadFile(x.log)
			t.Logf("Exim's output:\n%s\nExim's main log (last lines):\n%s", x.stderr.String(), tail(string(data), 40))
		}
		if panics, err := os.ReadFile(l.path("log", "exim-panic.log")); err == nil && len(panics) > 0 {
			t.Errorf("Exim's panic log:\n%s", panics)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(x.log)
		if strings.Contains(string(data), "listening for SMTP") {
			return x
		}
		select {
		case <-x.done:
			t.Fatalf("Exim exited at start: %v\n%s\n%s", x.cmd.ProcessState, x.stderr.String(), data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Exim not listening in 10s:\n%s\n%s", x.stderr.String(), data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the daemon and the processes it forked (SMTP sessions,
// deliveries): its process group, SIGTERM then SIGKILL.
func (x *eximDaemon) stop() {
	pgid := x.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-x.done:
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-x.done
	// None may write its log after the lab directory is gone (Exim would
	// make the directory again). Zombies are done: this machine's init may
	// be slow to reap them.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && eximGroupRuns(pgid); {
		time.Sleep(10 * time.Millisecond)
	}
}

// eximGroupRuns reports whether a process of the group pgid runs (is no
// zombie).
func eximGroupRuns(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold anything but ")".
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(data[i+1:]))
		if len(fields) >= 3 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			return true
		}
	}
	return false
}

// lines returns the main log's lines that hold s.
func (x *eximDaemon) lines(s string) []string {
	data, _ := os.ReadFile(x.log)
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// eximSendLegit submits a message as alice over port 587 with AUTH LOGIN from
// addr, and waits until Exim has delivered it to bob's mail file.
func (l *mailLab) eximSendLegit(x *eximDaemon, addr, subject string) {
	l.t.Helper()
	out, err := l.swaks("--auth", "LOGIN", "--auth-user", "alice@example.test", "--auth-password", "secret",
		"--ehlo", "client.example.net", "--local-interface", addr, "--server", labServer+":587",
		"--from", "alice@example.test", "--to", "bob@example.test", "--header", "Subject: "+subject)
	if err != nil || !strings.Contains(out, "250 OK id=") {
		l.t.Fatalf("the legitimate client %s could not send: %v\n%s", addr, err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mbox, _ := os.ReadFile(l.path("mail", "bob"))
		if strings.Contains(string(mbox), "Subject: "+subject) {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%q not delivered to bob in 10s; Exim's log:\n%s", subject, tail(strings.Join(x.lines(""), "\n"), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eximSession is one SMTP session from from to port: the greeting, then
// each command with its reply, refusals ignored. It reports whether the
// server greeted. A ban can land in the middle of the session (banwatchd
// acts on the line Exim writes for the EHLO or the AUTH before the client's
// next command), and the kernel then drops the rest: a command without a
// reply within 2s ends the session, where the shared helpers wait for
// their 20s deadline or the kernel.
func (l *mailLab) eximSession(from string, port int, cmds ...string) bool {
	s, err := l.dial(from, port)
	if err != nil {
		return false
	}
	defer s.close()
	s.c.SetDeadline(time.Now().Add(5 * time.Second)) // the greeting comes after a 1s pause on port 25
	if code, _, err := s.reply(); err != nil || code != 220 {
		return false
	}
	for _, c := range cmds {
		s.c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := s.cmd(c); err != nil {
			break
		}
	}
	return true
}

// eximAttack attacks from addr until the exim jail bans it and returns the
// tries it took and the reason banctl lists.
func (l *mailLab) eximAttack(name, addr string, maxTries int, try func(i int) bool) (int, string) {
	l.t.Helper()
	tries := 0
	l.attackUntilBanned(name, addr, "exim", maxTries, func(i int) bool { tries = i; return try(i) })
	for _, b := range l.listed(addr) {
		if b["jail"] == "exim" {
			return tries, fmt.Sprint(b["reason"])
		}
	}
	l.t.Fatalf("%s: %s in the kernel set but not in banctl list", name, addr)
	return 0, ""
}

// eximExpect checks the tries and reason of a ban: the counted events'
// kind after the tries their weights need, or, where the shipped jail bans
// that HELO name or event at once, one try.
func (l *mailLab) eximExpect(name string, tries int, reason, counted string, wantTries int, instant string) {
	l.t.Helper()
	switch {
	case instant != "" && reason == instant && tries == 1:
		l.t.Logf("%s: banned at once (%s)", name, reason)
	case strings.Contains(reason, counted) && tries == wantTries:
	default:
		l.t.Errorf("%s: banned after %d tries with reason %q; want %s after %d tries (or %q after 1)",
			name, tries, reason, counted, wantTries, instant)
	}
}

// Exim 4.96 attacked for real: AUTH LOGIN brute force on submission (the
// ylmf-pc botnet's and another one), a client that talks before the
// greeting and bogus HELO names on port 25, each banned from Exim's own log
// lines; the authenticated user is never banned and keeps sending.
func TestE2EExim(t *testing.T) {
	needMailLab(t, "swaks")
	start := time.Now()
	last := start
	step := func(what string) {
		t.Logf("%s: %v", what, time.Since(last).Round(time.Millisecond))
		last = time.Now()
	}
	l := newMailLab(t)
	x := l.startExim()
	l.startBanwatchd()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("banwatchd's log (last lines):\n%s", tail(l.daemon.log(), 40))
		}
	})
	step("Exim and banwatchd started")

	// The attacks, as the shared helpers (authLoginAttack, badHelo) do
	// them, but with eximSession's short wait after a ban mid-session.
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	authTry := func(from, helo, user, pass string) bool {
		return l.eximSession(from, 587, "EHLO "+helo, "AUTH LOGIN", b64(user), b64(pass), "QUIT")
	}
	heloTry := func(from, helo string) bool {
		return l.eximSession(from, 25, "EHLO "+helo, "MAIL FROM:<bot@example.net>", "RCPT TO:<alice@example.test>", "QUIT")
	}

	legit := l.client(40)
	l.eximSendLegit(x, legit, "before the attacks")
	step("legitimate mail delivered")

	// The botnet's AUTH LOGIN, EHLO ylmf-pc: 5 auth_failure strikes, or at
	// once when the jail knows the name.
	bot := l.client(41)
	tries, reason := l.eximAttack("exim auth (ylmf-pc)", bot, 10, func(i int) bool {
		return authTry(bot, "ylmf-pc", fmt.Sprintf("admin%d", i), "123456")
	})
	l.eximExpect("exim auth (ylmf-pc)", tries, reason, "auth_failure", 5, "instant helo=ylmf-pc")
	l.checkBanned(bot, "exim", reason, "LOGIN authenticator failed for (ylmf-pc) ["+bot+"]")
	step("ylmf-pc AUTH attack banned and checked")

	// A brute force under a HELO no jail knows: counted.
	brute := l.client(44)
	tries, reason = l.eximAttack("exim auth (EHLO User)", brute, 10, func(i int) bool {
		return authTry(brute, "User", fmt.Sprintf("info%d@example.test", i), "password1")
	})
	l.eximExpect("exim auth (EHLO User)", tries, reason, "auth_failure", 5, "")
	l.checkBanned(brute, "exim", "auth_failure", "LOGIN authenticator failed for (User) ["+brute+"]")
	step("brute force banned and checked")

	pre := l.client(42)
	tries, reason = l.eximAttack("exim pregreet", pre, 1, func(int) bool { return l.pregreet(pre, 25) })
	l.eximExpect("exim pregreet", tries, reason, "pregreet", 1, "instant pregreet")
	l.checkBanned(pre, "exim", "pregreet", "SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=["+pre+"]")
	step("pregreet banned and checked")

	helo := l.client(43)
	tries, reason = l.eximAttack("exim bad HELO (ylmf-pc)", helo, 10, func(int) bool { return heloTry(helo, "ylmf-pc") })
	l.eximExpect("exim bad HELO (ylmf-pc)", tries, reason, "bad_helo", 3, "instant helo=ylmf-pc")
	l.checkBanned(helo, "exim", reason, "rejected EHLO or HELO ylmf-pc: need fully-qualified hostname")
	step("ylmf-pc bad HELO banned and checked")

	local := l.client(45)
	tries, reason = l.eximAttack("exim bad HELO (localhost)", local, 10, func(int) bool {
		return heloTry(local, "localhost")
	})
	l.eximExpect("exim bad HELO (localhost)", tries, reason, "bad_helo", 3, "")
	l.checkBanned(local, "exim", "bad_helo", "rejected EHLO or HELO localhost: need fully-qualified hostname")
	step("localhost bad HELO banned and checked")

	l.checkNeverBanned(legit)
	l.eximSendLegit(x, legit, "after the attacks")
	step("legitimate mail delivered again")
	for _, a := range []string{legit, bot, brute, pre, helo, local} {
		for _, line := range x.lines("[" + a + "]") {
			t.Logf("exim: %s", line)
		}
	}
	l.restartAndFlush(map[string]string{bot: "exim", brute: "exim", pre: "exim", helo: "exim", local: "exim"})
	step("bans back after a restart on a flushed ruleset")
	t.Logf("the Exim lab took %v", time.Since(start).Round(time.Millisecond))
}
