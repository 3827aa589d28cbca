package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
)

const unitFile = "../../contrib/systemd/banwatchd.service"

// unitDirectives returns the unit's [Service] assignments, key to values
// in order.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if l[0] == '[' {
			section = l
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && section == "[Service]" {
			out[k] = append(out[k], v)
		}
	}
	return out
}

// The unit is what issue and README promise: Type=notify with a watchdog,
// reload by SIGHUP, two capabilities, a read-only system but for the state
// and socket directories the daemon uses by default.
func TestUnitDirectives(t *testing.T) {
	d := unitDirectives(t)
	want := map[string]string{
		"Type":                    "notify",
		"NotifyAccess":            "main",
		"ExecStart":               "/usr/sbin/banwatchd",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"CapabilityBoundingSet":   "CAP_NET_ADMIN CAP_DAC_READ_SEARCH",
		"ProtectSystem":           "strict",
		"ReadWritePaths":          config.DefaultStateDir + " " + filepath.Dir(config.DefaultSocket),
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_NETLINK AF_INET AF_INET6",
		// Not restarted when a restart cannot help: a bad configuration
		// (2) or no nftables (exitUnavailable).
		"RestartPreventExitStatus": "2 " + strconv.Itoa(exitUnavailable),
	}
	for k, v := range want {
		if got := d[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	ws, ok := d["WatchdogSec"]
	if !ok {
		t.Fatal("no WatchdogSec")
	}
	if s, err := time.ParseDuration(ws[0]); err != nil || s < 10*time.Second {
		t.Errorf("WatchdogSec = %q: want a duration of at least 10s (three probes in each)", ws[0])
	}
}

// systemdRoot builds a root for systemd-analyze's --root: the unit where an
// admin installs it, an executable at its ExecStart path, kill, and the
// distribution's units it refers to.
func systemdRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/sbin", "bin", "etc/systemd/system", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "cp", "-r", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	sh(t, "cp", kill, filepath.Join(root, "bin/kill"))
	bin := daemonBin
	if bin == "" {
		bin = filepath.Join(root, "placeholder")
		writeFile(t, bin, "#!/bin/sh\n")
		os.Chmod(bin, 0o755)
	}
	sh(t, "cp", bin, filepath.Join(root, "usr/sbin/banwatchd"))
	sh(t, "cp", unitFile, filepath.Join(root, "etc/systemd/system/banwatchd.service"))
	return root
}

// systemd-analyze verify passes on the unit without a word (it exits 0
// even on unknown keys and bad values, so any output fails the test), and
// systemd's own exposure score rates its hardening OK or better.
func TestUnitVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs systemd-analyze: skipped with -short")
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("needs systemd-analyze (Debian: systemd; `make deps` installs it)")
	}
	root := systemdRoot(t)
	const unit = "/etc/systemd/system/banwatchd.service"
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--root="+root, unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for banwatchd.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	if level > 3.0 {
		t.Errorf("exposure level %.1f %s, want at most 3.0:\n%s", level, m[2], out)
	}
	t.Logf("systemd-analyze security: exposure %.1f %s", level, m[2])
}

// notifySocket is systemd's end of the notification protocol.
type notifySocket struct {
	conn *net.UnixConn
	path string
}

func newNotifySocket(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn: conn, path: path}
}

// next returns the next message that is not a watchdog keep-alive, and
// counts those it skipped.
func (s *notifySocket) next(t *testing.T, within time.Duration) (msg string, keepAlives int) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(within)
	for {
		s.conn.SetReadDeadline(deadline)
		n, err := s.conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification within %v: %v", within, err)
		}
		if m := string(buf[:n]); m != "WATCHDOG=1" {
			return m, keepAlives
		}
		keepAlives++
	}
}

// expect reads the next message and checks it starts with want.
func (s *notifySocket) expect(t *testing.T, want string, log *testutil.Buffer) string {
	t.Helper()
	m, _ := s.next(t, 10*time.Second)
	if !strings.HasPrefix(m, want) {
		t.Fatalf("got %q, want %q first\n%s", m, want, log)
	}
	return m
}

// The real daemon under a notification socket, as systemd runs a
// Type=notify unit: READY=1 once banctl can talk to it, keep-alives at a
// third of WATCHDOG_USEC, RELOADING=1 then READY=1 around each SIGHUP
// whether the configuration is taken or refused, STOPPING=1 at SIGTERM.
func TestSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon: skipped with -short")
	}
	if daemonBin == "" {
		t.Skip("needs the banwatchd binary, built by TestMain as root")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	sock := filepath.Join(dir, "banwatch.sock")
	writeFile(t, filepath.Join(dir, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nfirewall = \"log\"\n",
		filepath.Join(dir, "state"), sock))
	jail := fmt.Sprintf("[postfix]\nenabled = true\nlogs = [%q]\n", logPath)
	writeFile(t, filepath.Join(dir, "jails", "test.toml"), jail)
	writeFile(t, logPath, "")
	ns := newNotifySocket(t, dir)

	cmd := exec.Command(daemonBin, "--config", dir)
	// systemd also sets WATCHDOG_PID to the daemon's PID; without it the
	// watchdog is the daemon's too (pkg/systemd tests both).
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=600000")
	var log testutil.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	ns.expect(t, "READY=1", &log)
	// The daemon logs before it notifies; its stderr reaches log through
	// a pipe, so the text may come a little after the datagram.
	logged := func(s string) bool {
		deadline := time.Now().Add(2 * time.Second)
		for !strings.Contains(log.String(), s) {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	if !logged("banwatchd running") {
		t.Errorf("READY=1, but no \"banwatchd running\" logged:\n%s", &log)
	}
	status := exec.Command(banctlBin, "status", "--socket", sock)
	if out, err := status.CombinedOutput(); err != nil {
		t.Errorf("banctl status right after READY=1: %v\n%s", err, out)
	}
	// Keep-alives every 200 ms.
	start := time.Now()
	kept := 0
	for time.Since(start) < time.Second {
		ns.conn.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 512)
		n, err := ns.conn.Read(buf)
		if err != nil {
			break
		}
		if string(buf[:n]) == "WATCHDOG=1" {
			kept++
		}
	}
	if kept < 3 || kept > 7 {
		t.Errorf("%d keep-alives in a second with WATCHDOG_USEC=600000, want about 5", kept)
	}

	// A good reload, then a refused one: both end with READY=1.
	cmd.Process.Signal(syscall.SIGHUP)
	m := ns.expect(t, "RELOADING=1\nMONOTONIC_USEC=", &log)
	if _, err := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(m, "RELOADING=1\nMONOTONIC_USEC="), "\n", 2)[0], 10, 64); err != nil {
		t.Errorf("MONOTONIC_USEC in %q: %v", m, err)
	}
	ns.expect(t, "READY=1", &log)
	if !logged("configuration reloaded") {
		t.Errorf("RELOADING=1 and READY=1, but no \"configuration reloaded\" logged:\n%s", &log)
	}
	writeFile(t, filepath.Join(dir, "jails", "broken.toml"), "[postfix2]\nfilter = \"postfix\"\nmax_strikes = \"five\"\n")
	cmd.Process.Signal(syscall.SIGHUP)
	ns.expect(t, "RELOADING=1", &log)
	ns.expect(t, "READY=1", &log)
	if !logged("reload refused") {
		t.Errorf("no refusal logged:\n%s", &log)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	ns.expect(t, "STOPPING=1", &log)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, &log)
	}
}

// The two capabilities the unit leaves (CapabilityBoundingSet) are all the
// daemon needs, with no new privileges: it reads a log that only its owner
// may read (CAP_DAC_READ_SEARCH), bans into nftables (CAP_NET_ADMIN) and
// answers banctl.
func TestRunsWithTheUnitsCapabilities(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	caps := unitDirectives(t)["CapabilityBoundingSet"]
	if len(caps) != 1 {
		t.Fatalf("CapabilityBoundingSet = %q", caps)
	}
	bounding := "-all"
	for _, c := range strings.Fields(caps[0]) {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	e := newEnv(t, newNetns(t), "")
	e.wrap = []string{"setpriv", "--bounding-set=" + bounding, "--inh-caps=-all", "--no-new-privs"}
	// A log only its owner (not root) may read.
	sh(t, "chown", "nobody", e.logPath)
	sh(t, "chmod", "0600", e.logPath)
	d := e.start()
	// ip netns exec and setpriv exec: the process started is the daemon.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// CAP_DAC_READ_SEARCH is bit 2, CAP_NET_ADMIN bit 12.
	for _, want := range []string{"CapEff:\t0000000000001004", "CapBnd:\t0000000000001004", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the daemon does not run as the unit would: no %q in\n%s", want, status)
		}
	}
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitElement(v4set, "203.0.113.7", 5*time.Second)
	if code, out, errOut := e.banctl("list"); code != 0 || !strings.Contains(out, "203.0.113.7") {
		t.Errorf("banctl list: exit %d\n%s%s", code, out, errOut)
	}
	d.stop(t)
}
