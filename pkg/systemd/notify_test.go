package systemd

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// manager is the service manager's end: a datagram socket that collects
// what the Notifier sends.
type manager struct {
	conn *net.UnixConn
	name string // for NOTIFY_SOCKET
}

func newManager(t *testing.T, abstract bool) *manager {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	if abstract {
		name = fmt.Sprintf("@banwatch-test-%d-%x", os.Getpid(), rand.Uint64())
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &manager{conn: conn, name: name}
}

// next returns the next datagram.
func (m *manager) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	m.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := m.conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifications(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			m := newManager(t, abstract)
			t.Setenv("NOTIFY_SOCKET", m.name)
			n, err := FromEnv()
			if err != nil || n == nil {
				t.Fatalf("FromEnv = %v, %v", n, err)
			}
			defer n.Close()
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Errorf("NOTIFY_SOCKET still set (%q): programs the daemon runs would inherit it", v)
			}
			steps := []struct {
				send func() error
				want string
			}{
				{func() error { return n.Ready("running, 3 jails") }, "READY=1\nSTATUS=running, 3 jails"},
				{n.Watchdog, "WATCHDOG=1"},
				{func() error { return n.Status("two\nlines") }, "STATUS=two lines"},
				{n.Stopping, "STOPPING=1\nSTATUS=stopping"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatal(err)
				}
				if got := m.next(t); got != s.want {
					t.Errorf("sent %q, want %q", got, s.want)
				}
			}
		})
	}
}

// RELOADING=1 carries CLOCK_MONOTONIC in microseconds, as systemd 253's
// Type=notify-reload checks.
func TestReloadingCarriesMonotonicClock(t *testing.T) {
	m := newManager(t, false)
	t.Setenv("NOTIFY_SOCKET", m.name)
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var before, after unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	got := m.next(t)
	fields := map[string]string{}
	for _, l := range strings.Split(got, "\n") {
		k, v, _ := strings.Cut(l, "=")
		fields[k] = v
	}
	if fields["RELOADING"] != "1" {
		t.Fatalf("sent %q, want RELOADING=1", got)
	}
	us, err := strconv.ParseInt(fields["MONOTONIC_USEC"], 10, 64)
	if err != nil || us < before.Nano()/1000 || us > after.Nano()/1000 {
		t.Errorf("MONOTONIC_USEC in %q is not the monotonic clock's reading in [%d, %d] µs", got, before.Nano()/1000, after.Nano()/1000)
	}
}

func TestWatchdogFromEnv(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name       string
		usec, pid  string
		want       time.Duration
		wantErr    bool
		wantNotify bool
	}{
		{name: "no watchdog", want: 0},
		{name: "ours", usec: "30000000", pid: self, want: 30 * time.Second},
		{name: "no WATCHDOG_PID", usec: "500000", want: 500 * time.Millisecond},
		{name: "another process's", usec: "30000000", pid: "1", want: 0},
		{name: "malformed", usec: "30s", pid: self, want: 0, wantErr: true},
		{name: "zero", usec: "0", want: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, false)
			t.Setenv("NOTIFY_SOCKET", m.name)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			n, err := FromEnv()
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if n == nil {
				t.Fatal("no Notifier although NOTIFY_SOCKET is set")
			}
			defer n.Close()
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("WatchdogInterval = %v, want %v", got, tt.want)
			}
			for _, v := range []string{"WATCHDOG_USEC", "WATCHDOG_PID"} {
				if _, ok := os.LookupEnv(v); ok {
					t.Errorf("%s still set", v)
				}
			}
		})
	}
}

// Without NOTIFY_SOCKET (not started by systemd) every call is a no-op.
func TestWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := FromEnv()
	if n != nil || err != nil {
		t.Fatalf("FromEnv = %v, %v; want nil, nil", n, err)
	}
	for _, f := range []func() error{func() error { return n.Ready("x") }, n.Reloading, n.Stopping, n.Watchdog, n.Close} {
		if err := f(); err != nil {
			t.Error(err)
		}
	}
	if n.WatchdogInterval() != 0 {
		t.Error("a watchdog without systemd")
	}
}

func TestBadSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if n, err := FromEnv(); err == nil || n != nil {
		t.Errorf("FromEnv with a relative NOTIFY_SOCKET = %v, %v; want an error", n, err)
	}
	// A socket that went away: the send fails, and says so.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ready("x"); err == nil {
		t.Error("Ready to a missing socket succeeded")
	}
}
