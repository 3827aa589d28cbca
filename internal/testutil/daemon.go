package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostfixConfig writes a configuration directory into dir for tests of the
// daemon: banwatch.toml with state_dir dir/state and the extra [daemon]
// lines given, and a jail file that points the postfix jail at dir/mail.log
// (created empty) and turns the other shipped jails off, so that no log of
// the machine running the test is read. It returns the log's path.
func PostfixConfig(t testing.TB, dir, daemonExtra string) string {
	t.Helper()
	return PostfixJail(t, dir, daemonExtra, "")
}

// PostfixJail is PostfixConfig with more keys for the postfix jail
// (jailExtra, TOML lines).
func PostfixJail(t testing.TB, dir, daemonExtra, jailExtra string) string {
	t.Helper()
	logPath := filepath.Join(dir, "mail.log")
	WriteFile(t, filepath.Join(dir, "banwatch.toml"),
		fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n%s", filepath.Join(dir, "state"), filepath.Join(dir, "banwatch.sock"), daemonExtra))
	WriteFile(t, filepath.Join(dir, "jails", "test.toml"), fmt.Sprintf(`
[postfix]
enabled = true
logs = [%q]
%s
[exim]
enabled = false
[dovecot]
enabled = false
[icewarp]
enabled = false
[sshd]
enabled = false
`, logPath, jailExtra))
	WriteFile(t, logPath, "")
	return logPath
}

// WriteFile writes data to path, making its directory.
func WriteFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// AppendLines appends lines to the log at path, as one write.
func AppendLines(t testing.TB, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// SASLFailures returns n Postfix SASL authentication failure lines of addr,
// stamped with the current time as syslog writes it.
func SASLFailures(addr string, n int) []string {
	stamp := time.Now().Format(time.Stamp)
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
			stamp, 2000+i, addr)
	}
	return out
}

// Buffer is a bytes buffer safe for concurrent writes and reads: a
// daemon's log output read while it runs.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BadLines returns hostile and broken log lines: a 1 MiB line that ends in
// a SASL failure of addr (which must not be taken: the line is too long to
// be read), binary garbage, invalid UTF-8 in a real failure line, and a
// line whose timestamp cannot be parsed.
func BadLines(addr string) []string {
	return []string{
		strings.Repeat("A", 1<<20) + " " + SASLFailures(addr, 1)[0],
		"\x00\x01\x02\xff\xfe binary \x1b[31m garbage",
		"Nov 28 04:00:00 mx postfix/smtpd[1]: warning: unknown[198.51.100.67]: SASL LOGIN authentication failed: \xff\xfe",
		"Xyz 99 99:99:99 mx postfix/smtpd[1]: warning: unknown[198.51.100.68]: SASL LOGIN authentication failed: x",
	}
}
