package main

// Integration tests of the real banwatchd binary: built once, run inside
// network namespaces these tests create, banning through the kernel's
// nftables, checked with the nft tool and with real TCP connections over a
// veth pair. They need root and the nft and ip tools, and skip without them.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/banwatch/banwatch/internal/testutil"
)

var daemonBin, banctlBin string // built by TestMain when the integration tests can run

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "banwatchd-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if os.Geteuid() == 0 {
			bin := filepath.Join(dir, "banwatchd")
			gobin := goTool()
			out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building banwatchd: %v\n%s", err, out)
				return 1
			}
			daemonBin = bin
			ctl := filepath.Join(dir, "banctl")
			out, err = exec.Command(gobin, "build", "-o", ctl, "../banctl").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building banctl: %v\n%s", err, out)
				return 1
			}
			banctlBin = ctl
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needRoot skips a test that needs namespaces and nftables.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables (run `make check` as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the %s tool (Debian: iproute2, nftables; `make deps` installs them)", tool)
		}
	}
}

// netns is a network namespace made for one test.
type netns struct{ name string }

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := &netns{name: fmt.Sprintf("bwt%d-%x", os.Getpid(), rand.Uint32())}
	sh(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name).Run() })
	sh(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	return n
}

func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// do runs fn on an OS thread inside n: sockets it opens belong to n.
func (n *netns) do(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + n.name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // the thread is in the wrong namespace; better to die
		}
	}()
	fn()
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// env is a configuration directory with the postfix jail on a temporary log.
type env struct {
	t       *testing.T
	ns      *netns
	dir     string
	logPath string
	state   string
	wrap    []string // a command the daemon runs under (setpriv ...), if any
}

func newEnv(t *testing.T, ns *netns, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, ns: ns, dir: dir, state: filepath.Join(dir, "state")}
	e.logPath = testutil.PostfixConfig(t, dir, extra)
	return e
}

var (
	writeFile = testutil.WriteFile
	failures  = testutil.SASLFailures
)

func (e *env) appendLines(lines ...string) { testutil.AppendLines(e.t, e.logPath, lines...) }

// startInNetns runs banwatchd on a fresh configuration in a fresh network
// namespace.
func startInNetns(t *testing.T) (*env, *daemonProc) {
	t.Helper()
	needRoot(t)
	e := newEnv(t, newNetns(t), "")
	return e, e.start()
}

// daemonProc is a running banwatchd.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr testutil.Buffer
	ready  chan struct{}
	done   chan struct{}
}

func (d *daemonProc) log() string { return d.stderr.String() }

// start runs banwatchd in e's namespace and waits until it is ready.
func (e *env) start(args ...string) *daemonProc {
	e.t.Helper()
	d := &daemonProc{ready: make(chan struct{}), done: make(chan struct{})}
	args = append([]string{"--config", e.dir, "--log-level", "debug"}, args...)
	if len(e.wrap) > 0 {
		d.cmd = e.ns.command(e.wrap[0], append(append(e.wrap[1:], daemonBin), args...)...)
	} else {
		d.cmd = e.ns.command(daemonBin, args...)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		e.t.Fatal(err)
	}
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			d.stderr.Write(append(sc.Bytes(), '\n'))
			if bytes.Contains(sc.Bytes(), []byte(`msg="banwatchd running"`)) {
				once.Do(func() { close(d.ready) })
			}
		}
	}()
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	e.t.Cleanup(func() { d.kill() })
	select {
	case <-d.ready:
	case <-d.done:
		e.t.Fatalf("banwatchd exited at start:\n%s", d.log())
	case <-time.After(15 * time.Second):
		e.t.Fatalf("banwatchd not ready in 15s:\n%s", d.log())
	}
	return d
}

func (d *daemonProc) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// stop sends SIGTERM and waits for the exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("banwatchd did not stop on SIGTERM:\n%s", d.log())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("banwatchd exit status %d:\n%s", code, d.log())
	}
}

// element is one element of an nftables set as `nft -j` lists it.
type element struct {
	Val     string
	Timeout time.Duration
	Expires time.Duration
}

// setName returns the name the backend gives the set of kind (postfix_v4)
// now: the backend adds a generation number, which a rebuild changes.
func (e *env) setName(kind string) string {
	e.t.Helper()
	out, err := e.ns.command("nft", "-j", "list", "sets", "inet").CombinedOutput()
	if err != nil {
		e.t.Fatalf("nft list sets: %v\n%s", err, out)
	}
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name  string `json:"name"`
				Table string `json:"table"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		e.t.Fatalf("nft -j output: %v\n%s", err, out)
	}
	for _, o := range doc.Nftables {
		if o.Set != nil && o.Set.Table == "banwatch" && (o.Set.Name == kind || strings.HasPrefix(o.Set.Name, kind+"_")) {
			return o.Set.Name
		}
	}
	return ""
}

// setElements lists the elements of the set of kind in the namespace; none
// when the set is missing.
func (e *env) setElements(kind string) map[string]element {
	e.t.Helper()
	var out []byte
	for try := 0; ; try++ {
		set := e.setName(kind)
		if set == "" {
			return nil
		}
		var err error
		out, err = e.ns.command("nft", "-j", "list", "set", "inet", "banwatch", set).CombinedOutput()
		if err == nil {
			break
		}
		// A rebuild may have replaced the set between the two listings.
		if try == 5 {
			e.t.Fatalf("nft list set %s: %v\n%s", set, err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return parseElements(e.t, out)
}

// parseElements reads the elements of the sets in nft -j output.
func parseElements(t *testing.T, out []byte) map[string]element {
	t.Helper()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j output: %v\n%s", err, out)
	}
	els := map[string]element{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["set"]
		if !ok {
			continue
		}
		var s struct {
			Elem []json.RawMessage `json:"elem"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		for _, r := range s.Elem {
			var plain string
			if json.Unmarshal(r, &plain) == nil {
				els[plain] = element{Val: plain}
				continue
			}
			var wrapped struct {
				Elem struct {
					Val     json.RawMessage `json:"val"`
					Timeout int64           `json:"timeout"`
					Expires int64           `json:"expires"`
				} `json:"elem"`
			}
			if err := json.Unmarshal(r, &wrapped); err != nil {
				t.Fatalf("element %s: %v", r, err)
			}
			val := strings.Trim(string(wrapped.Elem.Val), `"`)
			var pfx struct {
				Prefix struct {
					Addr string `json:"addr"`
					Len  int    `json:"len"`
				} `json:"prefix"`
			}
			if json.Unmarshal(wrapped.Elem.Val, &pfx) == nil && pfx.Prefix.Addr != "" {
				val = fmt.Sprintf("%s/%d", pfx.Prefix.Addr, pfx.Prefix.Len)
			}
			els[val] = element{Val: val, Timeout: time.Duration(wrapped.Elem.Timeout) * time.Second,
				Expires: time.Duration(wrapped.Elem.Expires) * time.Second}
		}
	}
	return els
}

// waitElement waits until addr is in set and returns it with the time it took.
func (e *env) waitElement(set, addr string, within time.Duration) (element, time.Duration) {
	e.t.Helper()
	start := time.Now()
	for {
		if el, ok := e.setElements(set)[addr]; ok {
			return el, time.Since(start)
		}
		if time.Since(start) > within {
			e.t.Fatalf("%s not in set %s within %v", addr, set, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const v4set = "postfix_v4"

func TestDaemonBansIntoNftables(t *testing.T) {
	e, d := startInNetns(t)
	e.appendLines(append(failures("198.51.100.9", 2), "Nov 28 00:00:00 mx postfix/smtpd[1]: connect from unknown[198.51.100.10]")...)
	e.appendLines(failures("203.0.113.7", 5)...)
	el, took := e.waitElement(v4set, "203.0.113.7", time.Second)
	t.Logf("banned in the kernel %v after the fifth strike was written", took.Round(time.Millisecond))
	week := 7 * 24 * time.Hour
	if el.Expires < week-time.Minute || el.Expires > week {
		t.Errorf("element expires in %v, want about 7 days", el.Expires)
	}
	els := e.setElements(v4set)
	for _, benign := range []string{"198.51.100.9", "198.51.100.10"} {
		if _, ok := els[benign]; ok {
			t.Errorf("%s banned", benign)
		}
	}
	d.stop(t)
	// The kernel keeps the ban after the daemon stops.
	if _, ok := e.setElements(v4set)["203.0.113.7"]; !ok {
		t.Errorf("the ban left the kernel when banwatchd stopped")
	}
}

// Two namespaces joined by a veth pair: the banned client's new connections
// to port 25 go nowhere, another client's still connect.
func TestBannedClientCannotConnect(t *testing.T) {
	needRoot(t)
	srv, connects := twoHosts(t, "10.99.0", time.Second)
	if !connects("10.99.0.2") || !connects("10.99.0.3") {
		t.Fatal("clients cannot connect before any ban")
	}

	e := newEnv(t, srv, "")
	e.start()
	e.appendLines(failures("10.99.0.2", 5)...)
	e.waitElement(v4set, "10.99.0.2", time.Second)
	if connects("10.99.0.2") {
		t.Error("the banned client still connects")
	}
	if !connects("10.99.0.3") {
		t.Error("the other client cannot connect")
	}
}

// SIGKILL right after a ban, a flushed ruleset (as after a reboot), lines
// written while the daemon was down: on restart the ban is back with its
// remaining time, and each line was read once.
func TestRestartAfterKillAndReboot(t *testing.T) {
	e, d := startInNetns(t)
	e.appendLines(append(append(failures("203.0.113.1", 3), failures("203.0.113.2", 3)...), failures("203.0.113.7", 5)...)...)
	before, _ := e.waitElement(v4set, "203.0.113.7", time.Second)
	d.kill()
	sh(t, "ip", "netns", "exec", e.ns.name, "nft", "flush", "ruleset")
	// While down: A gets its 4th and 5th strike (banned on restart), B one
	// more (4: not banned unless its first three counted twice), C four
	// (not banned unless read twice).
	e.appendLines(append(append(failures("203.0.113.1", 2), failures("203.0.113.2", 1)...), failures("203.0.113.3", 4)...)...)
	time.Sleep(1100 * time.Millisecond) // let the ban's remaining time visibly shrink
	d = e.start()
	after, _ := e.waitElement(v4set, "203.0.113.7", time.Second)
	if after.Expires >= before.Expires || after.Expires < before.Expires-time.Minute {
		t.Errorf("restored ban expires in %v; before the kill %v: want the remaining time", after.Expires, before.Expires)
	}
	e.waitElement(v4set, "203.0.113.1", time.Second)
	time.Sleep(300 * time.Millisecond)
	els := e.setElements(v4set)
	for _, a := range []string{"203.0.113.2", "203.0.113.3"} {
		if _, ok := els[a]; ok {
			t.Errorf("%s banned: a line was counted twice", a)
		}
	}
	d.stop(t)
}

// The ruleset flushed or the table deleted while the daemon runs: repaired.
func TestRepairsFlushedRuleset(t *testing.T) {
	e, d := startInNetns(t)
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitElement(v4set, "203.0.113.7", time.Second)
	sh(t, "ip", "netns", "exec", e.ns.name, "nft", "flush", "ruleset")
	e.waitElement(v4set, "203.0.113.7", 5*time.Second)
	sh(t, "ip", "netns", "exec", e.ns.name, "nft", "delete", "element", "inet", "banwatch", e.setName(v4set), "{ 203.0.113.7 }")
	e.waitElement(v4set, "203.0.113.7", 5*time.Second)
	d.stop(t)
}

// Rotation both ways mid-stream: no strike lost, none counted twice.
func TestRotation(t *testing.T) {
	e, d := startInNetns(t)
	marker := 0
	// settle waits until everything written so far was read: a fresh
	// address with five strikes is banned.
	settle := func() {
		marker++
		a := fmt.Sprintf("10.200.%d.1", marker) // each in its own /24: three bans in one would ban the /24
		e.appendLines(failures(a, 5)...)
		e.waitElement(v4set, a, 2*time.Second)
	}
	// Rename and create: 3 strikes before, 2 after.
	e.appendLines(failures("203.0.113.10", 3)...)
	settle()
	if err := os.Rename(e.logPath, e.logPath+".1"); err != nil {
		t.Fatal(err)
	}
	e.appendLines(failures("203.0.113.10", 2)...)
	e.waitElement(v4set, "203.0.113.10", 3*time.Second)
	settle()
	// Copy and truncate: 4 strikes before, then the copy and truncation; a
	// re-read would make 8.
	e.appendLines(failures("203.0.113.11", 4)...)
	settle()
	data, err := os.ReadFile(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.logPath+".2", string(data))
	if err := os.Truncate(e.logPath, 0); err != nil {
		t.Fatal(err)
	}
	settle()
	if _, ok := e.setElements(v4set)["203.0.113.11"]; ok {
		t.Fatal("203.0.113.11 banned after copytruncate: its lines were read twice")
	}
	e.appendLines(failures("203.0.113.11", 1)...)
	e.waitElement(v4set, "203.0.113.11", 2*time.Second)
	d.stop(t)
}

// Bad input is skipped and counted; the daemon keeps banning.
func TestBadInput(t *testing.T) {
	e, d := startInNetns(t)
	e.appendLines(testutil.BadLines("198.51.100.66")...)
	e.appendLines(failures("203.0.113.50", 5)...)
	e.waitElement(v4set, "203.0.113.50", 2*time.Second)
	if _, ok := e.setElements(v4set)["198.51.100.66"]; ok {
		t.Errorf("text inside a skipped long line was taken")
	}
	d.stop(t)
	// The garbage line and the line with a broken timestamp have no time.
	if !strings.Contains(d.log(), "unparsable=2") {
		t.Errorf("lines without a usable time were not counted:\n%s", tail(d.log(), 20))
	}
	if !strings.Contains(d.log(), "skipped=1") {
		t.Errorf("the long line was not counted as skipped:\n%s", tail(d.log(), 20))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The README's run command: no configuration, no mail logs. banwatchd says
// which jails wait for which logs and keeps running.
func TestRunsWithEmbeddedDefaults(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	e := &env{t: t, ns: ns, dir: filepath.Join(t.TempDir(), "absent")}
	tmp := t.TempDir()
	d := e.start("--state-dir", filepath.Join(tmp, "state"), "--socket", filepath.Join(tmp, "banwatch.sock"))
	time.Sleep(500 * time.Millisecond)
	select {
	case <-d.done:
		t.Fatalf("banwatchd exited:\n%s", d.log())
	default:
	}
	log := d.log()
	for _, j := range []string{"postfix", "exim", "icewarp", "dovecot", "sshd"} {
		if !strings.Contains(log, "msg=\"jail waits for its logs\" jail="+j) && !strings.Contains(log, "msg=\"jail started\" jail="+j) {
			t.Errorf("nothing said about jail %s:\n%s", j, log)
		}
	}
	if !strings.Contains(log, `msg="jail waits for its logs" jail=icewarp logs=/opt/icewarp/logs/smtp/s*.log`) {
		t.Errorf("icewarp's wait not reported:\n%s", log)
	}
	d.stop(t)
}

// With firewall = "log", banwatchd runs as an unprivileged user.
func TestLogOnlyWithoutRoot(t *testing.T) {
	needRoot(t) // to become nobody
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	dir, err := os.MkdirTemp("", "banwatch-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	logPath := filepath.Join(dir, "mail.log")
	writeFile(t, filepath.Join(dir, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nfirewall = \"log\"\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "banwatch.sock")))
	writeFile(t, filepath.Join(dir, "jails", "test.toml"), fmt.Sprintf("[postfix]\nenabled = true\nlogs = [%q]\n", logPath))
	writeFile(t, logPath, "")
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", daemonBin, "--config", dir)
	var out testutil.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	e := &env{t: t, logPath: logPath}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "banwatchd running") {
		if time.Now().After(deadline) {
			t.Fatalf("not running as nobody:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.appendLines(failures("203.0.113.7", 5)...)
	for !strings.Contains(out.String(), "msg=ban jail=postfix ip=203.0.113.7") {
		if time.Now().After(deadline) {
			t.Fatalf("no ban logged:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, out.String())
	}
}

// SIGHUP with a broken configuration is refused; the old one keeps running.
func TestReloadRefusesBrokenConfig(t *testing.T) {
	e, d := startInNetns(t)
	writeFile(t, filepath.Join(e.dir, "jails", "broken.toml"), "[postfix2]\nfilter = \"postfix\"\nlogs = [\"/x\"]\nmax_strikes = \"five\"\n")
	d.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.log(), "reload refused") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged:\n%s", d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(d.log(), "broken.toml:4") {
		t.Errorf("the refusal does not name file and line:\n%s", d.log())
	}
	e.appendLines(failures("203.0.113.8", 5)...)
	e.waitElement(v4set, "203.0.113.8", 2*time.Second)
	// A good configuration is taken, without dropping bans.
	os.Remove(filepath.Join(e.dir, "jails", "broken.toml"))
	writeFile(t, filepath.Join(e.dir, "jails", "test.toml"), fmt.Sprintf("[postfix]\nenabled = true\nmax_strikes = 2\nlogs = [%q]\n[exim]\nenabled = false\n[dovecot]\nenabled = false\n[icewarp]\nenabled = false\n[sshd]\nenabled = false\n", e.logPath))
	d.cmd.Process.Signal(syscall.SIGHUP)
	for !strings.Contains(d.log(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("not reloaded:\n%s", d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.appendLines(failures("203.0.113.9", 2)...)
	e.waitElement(v4set, "203.0.113.9", 2*time.Second)
	if _, ok := e.setElements(v4set)["203.0.113.8"]; !ok {
		t.Error("the reload dropped a ban")
	}
	d.stop(t)
}

// banctl runs banctl against e's daemon and returns its exit status and
// output.
func (e *env) banctl(args ...string) (int, string, string) {
	e.t.Helper()
	cmd := exec.Command(banctlBin, append(args, "--socket", filepath.Join(e.dir, "banwatch.sock"))...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// waitGone waits until addr is no longer in the set of kind.
func (e *env) waitGone(kind, addr string, within time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		if _, ok := e.setElements(kind)[addr]; !ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			e.t.Fatalf("%s still in set %s after %v", addr, kind, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// banctl against the real daemon: list, unban, history, a manual CIDR ban,
// and the refusal of an ignored address.
func TestBanctl(t *testing.T) {
	needRoot(t)
	e := newEnv(t, newNetns(t), "ignore = [\"192.0.2.0/24\"]\n")
	d := e.start()
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitElement(v4set, "203.0.113.7", time.Second)

	code, out, errs := e.banctl("list", "--json")
	if code != 0 || !strings.Contains(out, `"ip":"203.0.113.7","prefix":"203.0.113.7/32","jail":"postfix"`) {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	code, out, _ = e.banctl("list")
	if code != 0 || !strings.Contains(out, "203.0.113.7") || !strings.Contains(out, "1 active bans") {
		t.Errorf("list: %s", out)
	}

	if code, out, errs = e.banctl("unban", "203.0.113.7"); code != 0 || !strings.Contains(out, "unbanned 203.0.113.7 in jail postfix") {
		t.Fatalf("unban: %d %s %s", code, out, errs)
	}
	took := e.waitGone(v4set, "203.0.113.7", time.Second)
	t.Logf("gone from the kernel %v after banctl unban returned", took.Round(time.Millisecond))

	code, out, _ = e.banctl("history", "203.0.113.7", "--json")
	var h struct {
		Since   time.Time  `json:"since"`
		Ended   string     `json:"ended"`
		EndedAt *time.Time `json:"ended_at"`
		EndedBy string     `json:"ended_by"`
	}
	if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &h) != nil || h.Ended != "unbanned" ||
		h.EndedAt == nil || h.EndedAt.Before(h.Since) || h.EndedBy != "uid 0 (root)" {
		t.Errorf("history: %d %s", code, out)
	}
	code, out, _ = e.banctl("show", "203.0.113.7")
	if code != 0 || strings.Count(out, "SASL LOGIN authentication failed") != 5 {
		t.Errorf("show: %s", out)
	}

	if code, out, errs = e.banctl("ban", "198.51.100.0/24", "--for", "2d"); code != 0 {
		t.Fatalf("ban: %d %s %s", code, out, errs)
	}
	el, _ := e.waitElement("manual_net4", "198.51.100.0/24", time.Second)
	if el.Expires < 2*24*time.Hour-time.Minute || el.Expires > 2*24*time.Hour {
		t.Errorf("the CIDR ban expires in %v, want 2 days", el.Expires)
	}

	code, _, errs = e.banctl("ban", "192.0.2.7")
	if code != 1 || !strings.Contains(errs, "ignore list") {
		t.Errorf("ban of an ignored address: %d %s", code, errs)
	}
	if _, ok := e.setElements("manual_v4")["192.0.2.7"]; ok {
		t.Error("the ignored address was banned")
	}
	code, _, errs = e.banctl("ban", "192.0.2.7.1")
	if code != 1 || !strings.Contains(errs, "is not an address") {
		t.Errorf("ban of a bad address: %d %s", code, errs)
	}
	code, _, errs = e.banctl("unban", "--all")
	if code != 2 || !strings.Contains(errs, "--yes") {
		t.Errorf("unban --all without --yes: %d %s", code, errs)
	}
	d.stop(t)
	code, _, errs = e.banctl("status")
	if code != 2 || !strings.Contains(errs, "is banwatchd running?") {
		t.Errorf("status without a daemon: %d %s", code, errs)
	}
}

// The socket is root's alone unless socket_group names a group, whose
// members may then use it.
func TestSocketPermissions(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	for _, group := range []string{"", "adm"} {
		dir, err := os.MkdirTemp("", "banwatch-sock")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		extra := ""
		if group != "" {
			extra = fmt.Sprintf("socket_group = %q\n", group)
		}
		e := &env{t: t, ns: newNetns(t), dir: dir, state: filepath.Join(dir, "state")}
		e.logPath = testutil.PostfixConfig(t, dir, extra)
		d := e.start()
		st, err := os.Stat(filepath.Join(dir, "banwatch.sock"))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if group != "" {
			want = 0o660
		}
		if st.Mode().Perm() != want {
			t.Errorf("socket_group %q: socket mode %v, want %v", group, st.Mode().Perm(), want)
		}
		asNobody := func(groups string) (int, string) {
			args := []string{"--reuid=nobody", "--regid=nogroup"}
			if groups == "" {
				args = append(args, "--clear-groups")
			} else {
				args = append(args, "--groups="+groups)
			}
			cmd := exec.Command("setpriv", append(args, banctlBin, "status", "--socket", filepath.Join(dir, "banwatch.sock"))...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), string(out)
			}
			return 0, string(out)
		}
		if code, out := asNobody(""); code != 2 || !strings.Contains(out, "permission denied") {
			t.Errorf("socket_group %q: nobody without the group: %d %s", group, code, out)
		}
		if group != "" {
			if code, out := asNobody(group); code != 0 || !strings.Contains(out, "banwatchd") {
				t.Errorf("a member of %s: %d %s", group, code, out)
			}
		}
		d.stop(t)
	}
}

// A rotating botnet against the shipped postfix jail: 200 addresses over
// 20 /24s, each trying three times with EHLO ylmf-pc or with one shared
// user name. Every address is banned at its first event, or by its
// fingerprint, or inside its banned /24, and the kernel holds the /24s as
// intervals.
func TestBotnetIsStopped(t *testing.T) {
	e, d := startInNetns(t)
	stamp := time.Now().Format(time.Stamp)
	var lines []string
	var addrs []string
	for try := 0; try < 3; try++ {
		for net := 0; net < 20; net++ {
			for host := 1; host <= 10; host++ {
				a := fmt.Sprintf("198.18.%d.%d", net, host*7)
				if try == 0 {
					addrs = append(addrs, a)
				}
				if net%2 == 0 {
					lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 504 5.5.2 <ylmf-pc>: "+
						"Helo command rejected: need fully-qualified hostname; from=<x@example.net> to=<a@example.test> proto=ESMTP helo=<ylmf-pc>",
						stamp, 3000+net, a))
				} else {
					lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: "+
						"UGFzc3dvcmQ6, sasl_username=admin", stamp, 3000+net, a))
				}
			}
		}
	}
	e.appendLines(lines...)
	want := map[string]bool{}
	for n := 0; n < 20; n++ {
		want[fmt.Sprintf("198.18.%d.0/24", n)] = true
	}
	deadline := time.Now().Add(5 * time.Second)
	var nets map[string]element
	for {
		nets = e.setElements("postfix_net4")
		got := 0
		for p := range want {
			if _, ok := nets[p]; ok {
				got++
			}
		}
		if got == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 /24s in the kernel's interval set: %v\n%s", got, nets, tail(d.log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	singles := e.setElements("postfix_v4")
	for _, a := range addrs {
		p := netip.MustParsePrefix(a + "/24").Masked().String()
		if _, ok := singles[a]; !ok && nets[p].Val == "" {
			t.Errorf("%s is neither banned nor inside a banned prefix", a)
		}
	}
	// banctl lists the store's bans, which follow the kernel's (bans go to
	// the kernel first).
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, out, _ := e.banctl("list", "--json", "--jail", "postfix")
		if code == 0 && strings.Contains(out, `"reason":"instant helo=ylmf-pc"`) && strings.Contains(out, `"reason":"fingerprint user=admin`) &&
			strings.Contains(out, `"reason":"subnet: 3 addresses of 198.18.`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("banctl list lacks the reasons 10 s after the bans reached the kernel:\n%s", out)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d single-address bans and %d /24 bans for 200 addresses sending 600 attempts", len(singles), len(nets))
	d.stop(t)
}

// A kernel connection limit on the jail's ports: a client opening 50
// connections in a second gets the first `burst` and then nothing, another
// client still connects, and with conn_limit_ban the flooder shows in
// banctl list.
func TestConnLimit(t *testing.T) {
	needRoot(t)
	srv, connects := twoHosts(t, "10.98.0", 300*time.Millisecond)
	dir := t.TempDir()
	e := &env{t: t, ns: srv, dir: dir, state: filepath.Join(dir, "state")}
	e.logPath = testutil.PostfixJail(t, dir, "", "conn_limit = \"10/minute\"\nburst = 5\nconn_limit_ban = true")
	d := e.start()
	got := 0
	for i := 0; i < 50; i++ {
		if connects("10.98.0.2") {
			got++
		}
	}
	t.Logf("the flooder got %d of 50 connections", got)
	if got != 5 {
		t.Errorf("the flooder got %d connections, want the burst of 5", got)
	}
	if !connects("10.98.0.3") {
		t.Error("another client cannot connect")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, _ := e.banctl("list", "--json", "--ip", "10.98.0.2")
		if code == 0 && strings.Contains(out, `"origin":"conn_limit"`) && strings.Contains(out, `"jail":"postfix"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flooder is not in banctl list:\n%s\n%s", out, tail(d.log(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	code, out, _ := e.banctl("status")
	if code != 0 || !strings.Contains(out, "kernel connection limit 10/minute burst 5, bans") {
		t.Errorf("status:\n%s", out)
	}
	d.stop(t)
}

// twoHosts makes a server namespace (NET.1, with a TCP listener on port
// 25 that greets and hangs up) and a client namespace (NET.2 and NET.3)
// joined by veth; connects reports whether a connection from a client
// address gets through within timeout.
func twoHosts(t *testing.T, net3 string, timeout time.Duration) (srv *netns, connects func(from string) bool) {
	t.Helper()
	srv, cli := newNetns(t), newNetns(t)
	veth := fmt.Sprintf("bwh%x", rand.Uint32()&0xffffff)
	sh(t, "ip", "link", "add", veth+"s", "netns", srv.name, "type", "veth", "peer", "name", veth+"c", "netns", cli.name)
	sh(t, "ip", "-n", srv.name, "addr", "add", net3+".1/24", "dev", veth+"s")
	sh(t, "ip", "-n", cli.name, "addr", "add", net3+".2/24", "dev", veth+"c")
	sh(t, "ip", "-n", cli.name, "addr", "add", net3+".3/24", "dev", veth+"c")
	sh(t, "ip", "-n", srv.name, "link", "set", veth+"s", "up")
	sh(t, "ip", "-n", cli.name, "link", "set", veth+"c", "up")
	var ln net.Listener
	srv.do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", net3+".1:25"); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 mx ESMTP\r\n"))
			c.Close()
		}
	}()
	return srv, func(from string) bool {
		var err error
		cli.do(t, func() {
			d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			var c net.Conn
			if c, err = d.Dial("tcp", net3+".1:25"); err == nil {
				c.Close()
			}
		})
		return err == nil
	}
}
