// Package systemd speaks the service side of systemd's notification
// protocol (sd_notify(3)): a Type=notify service tells the service manager
// when it is ready, when it reloads, when it stops, and, when the unit sets
// WatchdogSec=, that it is still alive. Messages are datagrams of
// newline-separated VARIABLE=value assignments sent to the socket named by
// NOTIFY_SOCKET. No libsystemd: the protocol is a datagram.
package systemd

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to the service manager. A nil *Notifier is
// valid and sends nothing: it is what FromEnv returns when the process was
// not started by systemd (or by a unit without Type=notify). Its methods
// are safe for concurrent use.
type Notifier struct {
	fd       int // an unbound datagram socket
	addr     unix.SockaddrUnix
	watchdog time.Duration
}

// FromEnv returns a Notifier for the socket in NOTIFY_SOCKET (a path, or
// an abstract socket name starting with '@'), nil when the variable is
// unset or empty. It also reads the watchdog interval from WATCHDOG_USEC,
// unless WATCHDOG_PID names another process. The three variables are
// removed from the environment, so that programs the daemon runs do not
// take the service manager's messages for their own.
//
// An error means the variables were set but unusable (a malformed
// WATCHDOG_USEC, a socket that cannot be reached); the Notifier returned
// with it is still usable (nil, or without a watchdog).
func FromEnv() (*Notifier, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	usec, pid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if sock == "" {
		return nil, nil
	}
	if sock[0] != '/' && sock[0] != '@' {
		return nil, fmt.Errorf("systemd: NOTIFY_SOCKET %q: neither a path nor an abstract name", sock)
	}
	// Each message is sent to the name, as sd_notify does, rather than
	// over a connected socket: the service manager may replace its socket
	// (systemctl daemon-reexec) while the daemon runs.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("systemd: %w", err)
	}
	n := &Notifier{fd: fd, addr: unix.SockaddrUnix{Name: sock}} // '@' is an abstract name to x/sys/unix
	if usec == "" {
		return n, nil
	}
	if pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return n, nil // the watchdog is another process's
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return n, fmt.Errorf("systemd: WATCHDOG_USEC %q: not a positive number of microseconds", usec)
	}
	n.watchdog = time.Duration(us) * time.Microsecond
	return n, nil
}

// WatchdogInterval is the unit's WatchdogSec=: the service manager kills
// the service when no Watchdog keep-alive came for that long. Zero when
// there is no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Ready tells the service manager that start-up (or a reload) is complete,
// with a status line for `systemctl status`.
func (n *Notifier) Ready(status string) error {
	return n.send("READY=1", status)
}

// Reloading tells the service manager that the service reloads its
// configuration; Ready must follow when the reload is over, whether it was
// taken or refused. The message carries the monotonic clock's reading,
// which systemd 253 and later require for Type=notify-reload.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("systemd: %w", err)
	}
	us := ts.Nano() / 1000
	return n.send("RELOADING=1\nMONOTONIC_USEC="+strconv.FormatInt(us, 10), "reloading the configuration")
}

// Stopping tells the service manager that the service is shutting down.
func (n *Notifier) Stopping() error {
	return n.send("STOPPING=1", "stopping")
}

// Status sets the status line `systemctl status` shows.
func (n *Notifier) Status(status string) error {
	return n.send("", status)
}

// Watchdog sends a keep-alive. Call it at least every WatchdogInterval,
// and only when the service works.
func (n *Notifier) Watchdog() error {
	return n.send("WATCHDOG=1", "")
}

// Close closes the socket.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	return unix.Close(n.fd)
}

// send writes one datagram: the assignments in vars, and STATUS= unless
// status is empty. Newlines in status would start new assignments, so
// they become blanks.
func (n *Notifier) send(vars, status string) error {
	if n == nil {
		return nil
	}
	msg := vars
	if status != "" {
		if msg != "" {
			msg += "\n"
		}
		msg += "STATUS=" + strings.ReplaceAll(status, "\n", " ")
	}
	if msg == "" {
		return nil
	}
	addr := n.addr
	if err := unix.Sendto(n.fd, []byte(msg), 0, &addr); err != nil {
		return fmt.Errorf("systemd: notifying %s: %w", n.addr.Name, err)
	}
	return nil
}
