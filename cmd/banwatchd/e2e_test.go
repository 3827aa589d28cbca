package main

// End-to-end tests: real Debian mail servers in a network namespace, attacked
// from a second namespace over a veth pair by real SMTP clients (swaks, and
// a small client of ours that can talk before the banner), with banwatchd
// reading the servers' own logs and banning through nftables. `make deps`
// installs the packages; without them or without root the tests skip.

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The lab's addresses: the server, and the clients on the attacker side.
const labServer = "10.77.0.1"

// mailLab is a server namespace and a client namespace joined by veth,
// with a working directory the mail servers' users can read.
type mailLab struct {
	t        *testing.T
	srv, cli *netns
	dir      string
	mu       sync.Mutex
	addrs    map[string]bool // client addresses added so far
	// vethClient is the veth end in the client namespace.
	vethClient string
	env        *env // banwatchd's configuration
	daemon     *daemonProc
}

// needMailLab skips unless root, the namespace tools and the given
// programs are there.
func needMailLab(t *testing.T, programs ...string) {
	t.Helper()
	needRoot(t)
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (Debian packages postfix, dovecot-core, swaks; `make deps` installs them)", p)
		}
	}
}

func newMailLab(t *testing.T) *mailLab {
	t.Helper()
	l := &mailLab{t: t, srv: newNetns(t), cli: newNetns(t), addrs: map[string]bool{}}
	dir, err := os.MkdirTemp("", "banwatch-lab")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // the mail servers' users read below it
	l.dir = dir
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("lab directory kept: %s", dir)
		}
	})
	veth := fmt.Sprintf("bwl%x", os.Getpid()&0xffff)
	sh(t, "ip", "link", "add", veth+"s", "netns", l.srv.name, "type", "veth", "peer", "name", veth+"c", "netns", l.cli.name)
	sh(t, "ip", "-n", l.srv.name, "addr", "add", labServer+"/24", "dev", veth+"s")
	sh(t, "ip", "-n", l.srv.name, "link", "set", veth+"s", "up")
	sh(t, "ip", "-n", l.cli.name, "link", "set", veth+"c", "up")
	l.vethClient = veth + "c"
	return l
}

// client returns the address 10.77.0.N on the attacker side, adding it to
// the veth when new.
func (l *mailLab) client(n int) string {
	l.t.Helper()
	a := fmt.Sprintf("10.77.0.%d", n)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.addrs[a] {
		sh(l.t, "ip", "-n", l.cli.name, "addr", "add", a+"/24", "dev", l.vethClient)
		l.addrs[a] = true
	}
	return a
}

// path names a file in the lab directory.
func (l *mailLab) path(parts ...string) string {
	return filepath.Join(append([]string{l.dir}, parts...)...)
}

func (l *mailLab) write(name, data string) {
	l.t.Helper()
	writeFile(l.t, l.path(name), data)
}

// startBanwatchd runs banwatchd in the server namespace with the shipped
// jails pointed at the lab's logs (and the rest off).
func (l *mailLab) startBanwatchd() {
	l.t.Helper()
	cfg := l.path("banwatch")
	l.env = &env{t: l.t, ns: l.srv, dir: cfg, state: filepath.Join(cfg, "state")}
	writeFile(l.t, filepath.Join(cfg, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n",
		filepath.Join(cfg, "state"), filepath.Join(cfg, "banwatch.sock")))
	writeFile(l.t, filepath.Join(cfg, "jails", "lab.toml"), fmt.Sprintf(`
[postfix]
enabled = true
logs = [%q]
[dovecot]
enabled = true
logs = [%q]
[exim]
enabled = true
logs = [%q]
[icewarp]
enabled = false
[sshd]
enabled = false
`, l.path("log", "postfix.log"), l.path("log", "dovecot.log"), l.path("log", "exim-main.log")))
	l.daemon = l.env.start()
}

// smtp is one SMTP session of a client.
type smtp struct {
	c net.Conn
	r *bufio.Reader
}

// dial connects from the client address from to the server's port; it
// fails when the server's kernel drops the client (a ban): the SYN goes
// unanswered for a second.
func (l *mailLab) dial(from string, port int) (*smtp, error) {
	var c net.Conn
	var err error
	l.cli.do(l.t, func() {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err = d.Dial("tcp", net.JoinHostPort(labServer, fmt.Sprint(port)))
	})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &smtp{c: c, r: bufio.NewReader(c)}, nil
}

// reply reads one (multi-line) reply and returns its code and text. It
// waits 3 seconds at most: a client banned in the middle of its session
// hears nothing more.
func (s *smtp) reply() (int, string, error) {
	s.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var text strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return 0, text.String(), err
		}
		text.WriteString(line)
		if len(line) < 4 {
			return 0, text.String(), fmt.Errorf("short reply %q", line)
		}
		if line[3] != '-' {
			var code int
			fmt.Sscanf(line[:3], "%d", &code)
			return code, text.String(), nil
		}
	}
}

// cmd sends a command line and reads the reply.
func (s *smtp) cmd(line string) (int, string, error) {
	if _, err := fmt.Fprintf(s.c, "%s\r\n", line); err != nil {
		return 0, "", err
	}
	return s.reply()
}

func (s *smtp) close() { s.c.Close() }

// authLoginAttack is one try of the botnet: the banner, EHLO ylmf-pc, AUTH
// LOGIN with a guessed user and password, QUIT. It reports whether the
// server answered at all.
func (l *mailLab) authLoginAttack(from string, port int, try int) (answered bool) {
	s, err := l.dial(from, port)
	if err != nil {
		return false
	}
	defer s.close()
	if code, _, err := s.reply(); err != nil || code != 220 {
		return false
	}
	s.cmd("EHLO ylmf-pc")
	if code, _, _ := s.cmd("AUTH LOGIN"); code == 334 {
		s.cmd(base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("admin%d", try))))
		s.cmd(base64.StdEncoding.EncodeToString([]byte("123456")))
	}
	s.cmd("QUIT")
	return true
}

// pregreet talks before the banner: EHLO right after connecting, then goes
// on to MAIL and RCPT as bots do.
func (l *mailLab) pregreet(from string, port int) bool {
	s, err := l.dial(from, port)
	if err != nil {
		return false
	}
	defer s.close()
	fmt.Fprintf(s.c, "EHLO ylmf-pc\r\n")
	if _, _, err := s.reply(); err != nil { // the banner
		return false
	}
	// Servers differ in what they make of the early EHLO (postscreen takes
	// it as the pregreet and answers nothing; Exim drops the client): the
	// bot greets again and goes on.
	s.botSend("ylmf-pc")
	return true
}

// botSend greets with helo and tries to send a message, as a spam bot
// does, whatever the server answers.
func (s *smtp) botSend(helo string) {
	s.cmd("EHLO " + helo)
	s.cmd("MAIL FROM:<bot@example.net>")
	s.cmd("RCPT TO:<alice@example.test>")
	s.cmd("QUIT")
}

// badHelo greets with ylmf-pc, a name that is no hostname (and the
// botnet's), and tries to send.
func (l *mailLab) badHelo(from string, port int) bool { return l.badHeloAs(from, port, "ylmf-pc") }

// badHeloAs greets with name and tries to send.
func (l *mailLab) badHeloAs(from string, port int, name string) bool {
	s, err := l.dial(from, port)
	if err != nil {
		return false
	}
	defer s.close()
	if code, _, err := s.reply(); err != nil || code != 220 {
		return false
	}
	s.botSend(name)
	return true
}

// gotBanner reports whether a new connection from from to port gets the
// server's 220 banner.
func (l *mailLab) gotBanner(from string, port int) bool {
	s, err := l.dial(from, port)
	if err != nil {
		return false
	}
	defer s.close()
	s.c.SetDeadline(time.Now().Add(3 * time.Second))
	code, _, err := s.reply()
	return err == nil && code == 220
}

// attackUntilBanned repeats an attack until the client's address is in the
// jail's kernel set, and logs the tries it took and the time from the end of
// the last try to the kernel drop.
func (l *mailLab) attackUntilBanned(name, from, jail string, maxTries int, try func(i int) bool) {
	l.t.Helper()
	set := jail + "_v4"
	for i := 1; i <= maxTries; i++ {
		if !try(i) {
			l.t.Fatalf("%s: try %d from %s got no answer before any ban", name, i, from)
		}
		end := time.Now()
		for time.Since(end) < 400*time.Millisecond {
			if _, ok := l.env.setElements(set)[from]; ok {
				l.t.Logf("%s: %s banned in jail %s after %d tries, %v after the last one ended",
					name, from, jail, i, time.Since(end).Round(time.Millisecond))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	l.t.Fatalf("%s: %s not banned after %d tries\n%s", name, from, maxTries, tail(l.daemon.log(), 30))
}

// listed returns the active bans of ip as banctl list --json gives them.
func (l *mailLab) listed(ip string) []map[string]any {
	l.t.Helper()
	code, out, errs := l.env.banctl("list", "--json", "--ip", ip)
	if code != 0 {
		l.t.Fatalf("banctl list: %d %s", code, errs)
	}
	var bans []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var b map[string]any
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			l.t.Fatalf("banctl list line %q: %v", line, err)
		}
		bans = append(bans, b)
	}
	return bans
}

// checkBanned asserts what an admin would check of a banned attacker: banctl
// lists it in the jail with the reason, its next connection to port 25 gets
// no banner, and banctl show holds the real log lines.
func (l *mailLab) checkBanned(from, jail, reason, evidence string) {
	l.t.Helper()
	found := false
	for _, b := range l.listed(from) {
		if b["jail"] == jail && strings.Contains(fmt.Sprint(b["reason"]), reason) {
			found = true
		}
	}
	if !found {
		l.t.Errorf("%s: banctl list has no %s ban with reason %s: %v", from, jail, reason, l.listed(from))
	}
	if l.gotBanner(from, 25) {
		l.t.Errorf("%s: banned, yet its next connection to port 25 got the banner", from)
	}
	code, out, _ := l.env.banctl("show", from, "--jail", jail)
	if code != 0 || !strings.Contains(out, evidence) || !strings.Contains(out, from) {
		l.t.Errorf("%s: banctl show lacks the log lines (%q):\n%s", from, evidence, out)
	}
}

// checkNeverBanned asserts that the legitimate clients have no ban.
func (l *mailLab) checkNeverBanned(addrs ...string) {
	l.t.Helper()
	for _, a := range addrs {
		if bans := l.listed(a); len(bans) > 0 {
			l.t.Errorf("the legitimate client %s was banned: %v", a, bans)
		}
	}
}

// swaks runs swaks in the client namespace and returns its output.
func (l *mailLab) swaks(args ...string) (string, error) {
	out, err := l.cli.command("swaks", append(args, "--timeout", "10")...).CombinedOutput()
	return string(out), err
}

// restartAndFlush restarts banwatchd after flushing the ruleset, as after a
// reboot, and checks that the given bans are back in the kernel.
func (l *mailLab) restartAndFlush(bans map[string]string) {
	l.t.Helper()
	l.daemon.stop(l.t)
	sh(l.t, "ip", "netns", "exec", l.srv.name, "nft", "flush", "ruleset")
	l.daemon = l.env.start()
	for ip, jail := range bans {
		l.env.waitElement(jail+"_v4", ip, 2*time.Second)
	}
}
