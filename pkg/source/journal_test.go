package source

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/journaltest"
)

// collectJournal reads batches from out until n lines came or within passed.
func collectJournal(t *testing.T, out <-chan []Line, n int, within time.Duration) []Line {
	t.Helper()
	var got []Line
	deadline := time.After(within)
	for len(got) < n {
		select {
		case b := <-out:
			got = append(got, b...)
		case <-deadline:
			t.Fatalf("%d of %d lines within %v: %q", len(got), n, within, texts(got))
		}
	}
	return got
}

func texts(ls []Line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, string(l.Text))
	}
	return out
}

// The journal source follows real journal files: entries written before
// and while it runs come as RFC 3339 syslog lines, the matches select them,
// entries with a forged header are skipped, and a new source started at
// the last line's cursor resumes exactly after it.
func TestJournalFollows(t *testing.T) {
	journaltest.Need(t)
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 28, 11, 0, 0, 123456000, time.UTC)
	journaltest.Write(t, dir,
		journaltest.Postfix(t0, 100, "connect from unknown[192.0.2.1]"),
		journaltest.Entry{Time: t0.Add(time.Second), Fields: map[string]string{"_HOSTNAME": "mx", "SYSLOG_IDENTIFIER": "sshd", "_PID": "7", "_SYSTEMD_UNIT": "ssh.service", "MESSAGE": "not postfix"}},
		journaltest.Postfix(t0.Add(2*time.Second), 100, "warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
	)
	opts := JournalOptions{Matches: []string{"_SYSTEMD_UNIT=postfix@-.service"}, Directory: dir}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan []Line, 16)
	j := NewJournal(Start{Since: t0.Add(-time.Hour)}, nil, opts)
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx, out) }()
	got := collectJournal(t, out, 2, 10*time.Second)
	ts := t0.Local().Format("2006-01-02T15:04:05.000000-07:00")
	if want := ts + " mx postfix/smtpd[100]: connect from unknown[192.0.2.1]"; string(got[0].Text) != want {
		t.Errorf("line %q, want %q", got[0].Text, want)
	}
	if got[0].Path != JournalName(opts.Matches) || got[0].Pos.Cursor == "" || got[0].Pos.Path != got[0].Path {
		t.Errorf("line 1 path %q, position %+v", got[0].Path, got[0].Pos)
	}

	// While it follows: a message with a line break, and an entry whose
	// identifier carries a whole forged header.
	journaltest.Write(t, dir,
		journaltest.Postfix(t0.Add(3*time.Second), 101, "first\nsecond"),
		journaltest.Entry{Time: t0.Add(4 * time.Second), Fields: map[string]string{"_HOSTNAME": "mx", "_SYSTEMD_UNIT": "postfix@-.service",
			"SYSLOG_IDENTIFIER": "postfix/smtpd[1]: warning: unknown[6.6.6.6]: SASL LOGIN authentication failed: x", "MESSAGE": "y"}},
		journaltest.Postfix(t0.Add(5*time.Second), 102, "disconnect from unknown[192.0.2.1]"),
	)
	more := collectJournal(t, out, 3, 10*time.Second)
	if !strings.HasSuffix(string(more[0].Text), "postfix/smtpd[101]: first second") {
		t.Errorf("multi-line message: %q", more[0].Text)
	}
	if !more[1].Skipped || more[1].Text != nil || more[1].Pos.Cursor == "" {
		t.Errorf("forged identifier not skipped: %+v", more[1])
	}
	if st := j.Stats(); st.Lines != 4 || st.Skipped != 1 || !st.Open || st.Pos != more[2].Pos {
		t.Errorf("stats %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}

	// Resume after the second line's cursor: the rest comes again, once.
	journaltest.Write(t, dir, journaltest.Postfix(t0.Add(6*time.Second), 103, "last"))
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	out2 := make(chan []Line, 16)
	j2 := NewJournal(Start{Resume: got[1].Pos}, nil, opts)
	go j2.Run(ctx2, out2)
	again := collectJournal(t, out2, 4, 10*time.Second)
	if !strings.HasSuffix(string(again[0].Text), "first second") || !strings.HasSuffix(string(again[3].Text), "[103]: last") {
		t.Errorf("resumed at the wrong entry: %q", texts(again))
	}
	select {
	case b := <-out2:
		t.Errorf("more lines than written: %q", texts(b))
	case <-time.After(300 * time.Millisecond):
	}
}

// Entries are checked field by field before they become a line.
func TestJournalEntry(t *testing.T) {
	j := NewJournal(Start{}, nil, JournalOptions{Matches: []string{"SYSLOG_IDENTIFIER=dovecot"}})
	const cur = `"__CURSOR":"s=1;i=1","__REALTIME_TIMESTAMP":"1795866531489061"`
	ts := time.UnixMicro(1795866531489061).Local().Format("2006-01-02T15:04:05.000000-07:00")
	tests := []struct {
		name, json string
		want       string // "" for a skipped line
		noLine     bool   // not even a skipped line (no cursor)
	}{
		{"plain", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","_PID":"9","MESSAGE":"imap-login: Disconnected"}`, ts + " mx dovecot[9]: imap-login: Disconnected", false},
		{"SYSLOG_PID first", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","SYSLOG_PID":"3","_PID":"9","MESSAGE":"m"}`, ts + " mx dovecot[3]: m", false},
		{"no pid", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":"m"}`, ts + " mx dovecot: m", false},
		{"no identifier: _COMM", `{` + cur + `,"_HOSTNAME":"mx","_COMM":"dovecot","MESSAGE":"m"}`, ts + " mx dovecot: m", false},
		{"binary message", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":[104,105,10,255]}`, ts + " mx dovecot: hi \xff", false},
		{"blank in identifier", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/smtpd[1]: x","MESSAGE":"m"}`, "", false},
		{"bracket in host", `{` + cur + `,"_HOSTNAME":"mx[1.2.3.4]","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":"m"}`, "", false},
		{"pid not a number", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","_PID":"1]: x","MESSAGE":"m"}`, "", false},
		{"null message", `{` + cur + `,"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":null}`, "", false},
		{"no host", `{` + cur + `,"SYSLOG_IDENTIFIER":"dovecot","MESSAGE":"m"}`, "", false},
		{"no cursor", `{"_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"dovecot","MESSAGE":"m"}`, "", true},
		{"not JSON", `{"__CURSOR":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := j.entry([]byte(tt.json))
			switch {
			case tt.noLine:
				if ok {
					t.Errorf("a line %+v from an entry without a cursor", l)
				}
			case tt.want == "":
				if !ok || !l.Skipped || l.Text != nil || l.Pos.Cursor != "s=1;i=1" {
					t.Errorf("got %+v, %v; want a skipped line at the cursor", l, ok)
				}
			default:
				if !ok || l.Skipped || string(l.Text) != tt.want {
					t.Errorf("got %q (skipped %v), want %q", l.Text, l.Skipped, tt.want)
				}
			}
		})
	}
}

// A journalctl that fails at once (no journal on this machine) is run
// again less and less often, and its failure is logged once.
func TestJournalBacksOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 1.6 s: skipped with -short")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho run >>"+calls+"\necho 'No journal files were found.' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var logBuf lockedBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	j := NewJournal(Start{}, log, JournalOptions{Matches: []string{"_SYSTEMD_UNIT=x.service"}, Journalctl: script, Restart: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 1600*time.Millisecond)
	defer cancel()
	if err := j.Run(ctx, make(chan []Line)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(calls)
	// Runs at about 0, 0.1, 0.3, 0.7 and 1.5 s: 5, where a fixed 100 ms
	// would make 15 or so.
	if n := strings.Count(string(data), "run"); n < 3 || n > 7 {
		t.Errorf("journalctl ran %d times in 1.6 s", n)
	}
	if n := strings.Count(logBuf.String(), "level=WARN"); n != 1 || !strings.Contains(logBuf.String(), "No journal files were found.") {
		t.Errorf("%d warnings:\n%s", n, logBuf.String())
	}
}

// lockedBuffer is a strings.Builder safe for a logger and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
