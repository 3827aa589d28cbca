// Package journaltest writes real systemd journal files for tests, with
// Debian's systemd-journal-remote, so that journal sources are tested
// against journalctl without a running journald.
package journaltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Remote is Debian's systemd-journal-remote, which writes journal
// files from the export format: the tests' way to make real journals
// without a running journald.
const Remote = "/lib/systemd/systemd-journal-remote"

// Need skips a test without journalctl and
// systemd-journal-remote, or under -short.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs journalctl and systemd-journal-remote: skipped with -short")
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("needs journalctl (Debian: systemd)")
	}
	if _, err := os.Stat(Remote); err != nil {
		t.Skip("needs systemd-journal-remote (Debian: systemd-journal-remote; `make deps` installs it)")
	}
}

// Entry is one entry to write: its time and fields.
type Entry struct {
	Time   time.Time
	Fields map[string]string
}

// Postfix is an entry of postfix/smtpd as journald records it
// for Debian's postfix@-.service.
func Postfix(t time.Time, pid int, msg string) Entry {
	return Entry{t, map[string]string{"_HOSTNAME": "mx", "SYSLOG_IDENTIFIER": "postfix/smtpd", "_PID": fmt.Sprint(pid),
		"_SYSTEMD_UNIT": "postfix@-.service", "MESSAGE": msg}}
}

var monotonic atomic.Int64

// Write appends entries to dir/remote.journal with
// systemd-journal-remote (a value with a newline goes in the export
// format's binary form).
func Write(t testing.TB, dir string, ents ...Entry) {
	t.Helper()
	var b strings.Builder
	for _, e := range ents {
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n",
			e.Time.UnixMicro(), monotonic.Add(1))
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := e.Fields[k]
			if strings.Contains(v, "\n") {
				b.WriteString(k + "\n")
				n := uint64(len(v))
				for i := 0; i < 8; i++ {
					b.WriteByte(byte(n >> (8 * i)))
				}
				b.WriteString(v + "\n")
				continue
			}
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		b.WriteString("\n")
	}
	cmd := exec.Command(Remote, "-o", filepath.Join(dir, "remote.journal"), "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
}
