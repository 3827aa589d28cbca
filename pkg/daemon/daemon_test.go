package daemon

import (
	"context"
	"log/slog"
	"net/netip"
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
	t       *testing.T
	dir     string
	logPath string
	cfg     *config.Config
	logBuf  *testutil.Buffer
}

func newEnv(t *testing.T) *testEnv {
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

var failures = testutil.SASLFailures

// start runs the daemon until the returned stop is called.
func (e *testEnv) start() (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(e.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- Run(ctx, Options{Config: e.cfg, Logger: log, Ready: func() { close(ready) }})
	}()
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
func (e *testEnv) waitBanned(addr string) ban.Ban {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, ok := e.active()[addr]; ok {
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s not banned within 5s\n%s", addr, e.logBuf)
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
