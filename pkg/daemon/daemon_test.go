package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/store"
)

// These tests run the daemon in-process with the "log" firewall (no root,
// no kernel) and check what it committed to the store, a real SQLite file.
// The kernel side is tested in cmd/banwatchd's integration tests.

// testEnv is a configuration directory with one postfix jail reading a
// temporary mail.log, the other shipped jails off.
type testEnv struct {
	t       testing.TB
	dir     string
	logPath string
	cfg     *config.Config
	logBuf  *testutil.Buffer
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, logBuf: &testutil.Buffer{}}
	e.logPath = testutil.PostfixConfig(t, dir, "firewall = \"log\"\n")
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	return e
}

func (e *testEnv) appendLines(lines ...string) { testutil.AppendLines(e.t, e.logPath, lines...) }

// setDaemon rewrites banwatch.toml with the log firewall, e's state
// directory and socket, and the extra [daemon] lines given, and loads the
// configuration again.
func (e *testEnv) setDaemon(extra string) {
	e.t.Helper()
	testutil.WriteFile(e.t, filepath.Join(e.dir, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nfirewall = \"log\"\n%s",
		e.cfg.Daemon.StateDir, e.cfg.Daemon.Socket, extra))
	cfg, err := config.Load(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cfg = cfg
}

var failures = testutil.SASLFailures

// start runs the daemon until the returned stop is called.
func (e *testEnv) start() (stop func()) {
	e.t.Helper()
	return e.startWith(Options{})
}

// startWith is start with more options (the configuration, logger,
// LoadConfig and Ready are e's).
func (e *testEnv) startWith(opts Options) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts.Config, opts.Ready = e.cfg, func() { close(ready) }
	opts.Logger = slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.LoadConfig = func() (*config.Config, error) { return config.Load(e.dir) }
	go func() { done <- Run(ctx, opts) }()
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("daemon stopped at start: %v\n%s", err, e.logBuf)
	case <-time.After(10 * time.Second):
		e.t.Fatalf("daemon not ready in 10s\n%s", e.logBuf)
	}
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("daemon: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Fatalf("daemon did not stop in 10s")
		}
	}
}

// history returns the stored bans of addr, with their evidence.
func (e *testEnv) history(addr string) []ban.Ban {
	e.t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(e.cfg.Daemon.StateDir, DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	h, err := st.History(context.Background(), store.Query{Prefix: netip.MustParsePrefix(addr + "/32")})
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// active returns the stored active bans by address.
func (e *testEnv) active() map[string]ban.Ban {
	e.t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(e.cfg.Daemon.StateDir, DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	bans, err := st.Active(context.Background(), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]ban.Ban{}
	for _, b := range bans {
		out[b.Prefix.Addr().String()] = b
	}
	return out
}

// waitBanned waits until addr has an active ban.
// It looks the address up by index, not by loading every active ban, so
// that it stays quick with many bans in the store.
func (e *testEnv) waitBanned(addr string) ban.Ban {
	e.t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(e.cfg.Daemon.StateDir, DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	p := netip.MustParsePrefix(addr + "/32")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		bans, err := st.History(context.Background(), store.Query{Prefix: p})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, b := range bans {
			if b.Prefix == p && b.Ended == ban.EndActive && b.End.After(time.Now()) {
				return b
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s not banned within 10s\n%s", addr, e.logBuf)
	return ban.Ban{}
}

func TestBanAfterFiveFailures(t *testing.T) {
	e := newEnv(t)
	e.appendLines("Nov 28 00:00:00 mx postfix/smtpd[1]: connect from unknown[192.0.2.1]")
	stop := e.start()
	defer stop()
	benign := strings.Replace(failures("198.51.100.20", 1)[0], "SASL LOGIN authentication failed: UGFzc3dvcmQ6", "connect from", 1)
	e.appendLines(append(failures("203.0.113.7", 5), failures("198.51.100.9", 4)...)...)
	e.appendLines(benign)
	b := e.waitBanned("203.0.113.7")
	if b.Jail != "postfix" || b.Strikes != 5 || b.Reason != "auth_failure" || b.Origin != ban.OriginJail {
		t.Errorf("ban: %+v", b)
	}
	if d := b.End.Sub(b.Start); d != 7*24*time.Hour {
		t.Errorf("ban lasts %v, want 7d", d)
	}
	time.Sleep(200 * time.Millisecond)
	act := e.active()
	if _, ok := act["198.51.100.9"]; ok {
		t.Errorf("four failures banned 198.51.100.9")
	}
	if len(act) != 1 {
		t.Errorf("active bans: %v", act)
	}
	if !strings.Contains(e.logBuf.String(), `msg=ban jail=postfix ip=203.0.113.7 strikes=5 reason=auth_failure`) {
		t.Errorf("no ban log line:\n%s", e.logBuf)
	}
}

func TestRestartReadsEachLineOnce(t *testing.T) {
	e := newEnv(t)
	stop := e.start()
	// 3 strikes of A and 3 of B before the stop; a marker ban makes sure
	// they were committed.
	e.appendLines(append(append(failures("203.0.113.1", 3), failures("203.0.113.2", 3)...), failures("203.0.113.99", 5)...)...)
	e.waitBanned("203.0.113.99")
	stop()
	// While stopped: 2 more of A (5 in all: banned), 1 more of B (4: not
	// banned, unless the first 3 were counted twice), 4 of C (not banned
	// unless read twice).
	e.appendLines(append(append(failures("203.0.113.1", 2), failures("203.0.113.2", 1)...), failures("203.0.113.3", 4)...)...)
	stop = e.start()
	defer stop()
	e.waitBanned("203.0.113.1")
	time.Sleep(300 * time.Millisecond)
	act := e.active()
	for _, a := range []string{"203.0.113.2", "203.0.113.3"} {
		if _, ok := act[a]; ok {
			t.Errorf("%s banned: a line was counted twice", a)
		}
	}
	if _, ok := act["203.0.113.99"]; !ok {
		t.Errorf("the ban from before the restart is gone")
	}
}

func TestBadInputIsSkipped(t *testing.T) {
	e := newEnv(t)
	stop := e.start()
	defer stop()
	e.appendLines(testutil.BadLines("198.51.100.66")...)
	e.appendLines(failures("203.0.113.50", 5)...)
	e.waitBanned("203.0.113.50")
	if _, ok := e.active()["198.51.100.66"]; ok {
		t.Errorf("text inside a skipped long line was taken")
	}
}

// The host's own addresses are never banned, whatever the log says.
func TestOwnAddressNeverBanned(t *testing.T) {
	var own string
	for _, p := range ownAddrs(slog.New(slog.DiscardHandler)) {
		if !p.Addr().IsLoopback() && p.Addr().Is4() {
			own = p.Addr().String()
			break
		}
	}
	if own == "" {
		t.Skip("this host has no non-loopback IPv4 address")
	}
	e := newEnv(t)
	stop := e.start()
	defer stop()
	e.appendLines(append(append(failures(own, 10), failures("127.0.0.1", 10)...), failures("203.0.113.60", 5)...)...)
	e.waitBanned("203.0.113.60")
	act := e.active()
	for _, a := range []string{own, "127.0.0.1"} {
		if _, ok := act[a]; ok {
			t.Errorf("banned %s, an address of this host", a)
		}
	}
}

// A ban keeps the lines of the strikes that made it, also those committed
// in earlier batches.
func TestEvidenceKept(t *testing.T) {
	e := newEnv(t)
	stop := e.start()
	defer stop()
	lines := failures("203.0.113.70", 5)
	e.appendLines(lines[:2]...)
	time.Sleep(100 * time.Millisecond) // a separate batch
	e.appendLines(lines[2:]...)
	e.waitBanned("203.0.113.70")
	st, err := store.Open(context.Background(), filepath.Join(e.cfg.Daemon.StateDir, DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.History(context.Background(), store.Query{Prefix: netip.MustParsePrefix("203.0.113.70/32")})
	if err != nil || len(h) != 1 {
		t.Fatalf("history %v, %v", h, err)
	}
	if strings.Join(h[0].Evidence, "\n") != strings.Join(lines, "\n") {
		t.Errorf("evidence:\n%s\nwant:\n%s", strings.Join(h[0].Evidence, "\n"), strings.Join(lines, "\n"))
	}
}

// A first start on a log with history reads only the last find_time of it:
// an old attack is not replayed as a new ban.
func TestFirstStartReadsOnlyTheWindow(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-time.Hour).Format(time.Stamp)
	var lines []string
	for _, l := range failures("203.0.113.80", 5) {
		lines = append(lines, old+l[len(time.Stamp):])
	}
	e.appendLines(append(lines, failures("203.0.113.81", 5)...)...)
	stop := e.start()
	defer stop()
	e.waitBanned("203.0.113.81")
	if _, ok := e.active()["203.0.113.80"]; ok {
		t.Error("an attack from an hour ago, outside find_time, was banned at first start")
	}
}

// A jail whose log is a pattern follows the newest matching file, and
// counts strikes across files; the date in a file's name dates its lines.
func TestPatternFollowsNewestFile(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.dir, "icewarp", "smtp")
	testutil.WriteFile(t, filepath.Join(e.dir, "jails", "test.toml"), fmt.Sprintf(
		"[icewarp]\nenabled = true\nlogs = [%q]\n[postfix]\nenabled = false\n[exim]\nenabled = false\n"+
			"[dovecot]\nenabled = false\n[sshd]\nenabled = false\n", filepath.Join(dir, "s*.log")))
	cfg, err := config.Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	now := time.Now()
	fail := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, "81.198.214.48   [0968] "+now.Format("15:04:05")+" >>> 535 5.7.8 Authentication credentials invalid")
		}
		return out
	}
	today := filepath.Join(dir, "s"+now.Format("20060102")+".log")
	old := filepath.Join(dir, "s20200101.log")
	testutil.WriteFile(t, old, strings.Join(fail(5), "\n")+"\n") // an old day's file: not read
	if err := os.Chtimes(old, now.AddDate(-6, 0, 0), now.AddDate(-6, 0, 0)); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, today, "")
	stop := e.start()
	defer stop()
	testutil.AppendLines(t, today, fail(3)...)
	time.Sleep(200 * time.Millisecond)
	// IceWarp rotates within the day to s<date>-01.log, which sorts before
	// s<date>.log by name: the newer file is found by modification time.
	next := filepath.Join(dir, "s"+now.Format("20060102")+"-01.log")
	testutil.WriteFile(t, next, strings.Join(fail(2), "\n")+"\n")
	b := e.waitBanned("81.198.214.48")
	if b.Jail != "icewarp" || b.Strikes != 5 {
		t.Errorf("ban %+v", b)
	}
	if y, m, d := b.Start.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		t.Errorf("ban starts %v: the date did not come from the file name", b.Start)
	}
}
