package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain reads the test logs' zone-less times as UTC, whatever zone the
// machine is in.
func TestMain(m *testing.M) {
	time.Local = time.UTC
	os.Exit(m.Run())
}

func runBanctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// testLog copies testdata/mail.log with a known modification time: the
// year of its syslog lines is taken from it.
func testLog(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTestJSON(t *testing.T) {
	path := testLog(t)
	code, out, errOut := runBanctl(t, "", "test", path, "--json", "--filter", "postfix", "--config", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		`{"type":"match","file":"` + path + `","line":2,"time":"2026-11-28T02:00:01Z","ip":"198.51.100.23","event":"pregreet","filter":"postfix","helo":"ylmf-pc"}`,
		`{"type":"match","file":"` + path + `","line":3,"time":"2026-11-28T02:00:06Z","ip":"198.51.100.40","event":"auth_failure","filter":"postfix"}`,
		`{"type":"match","file":"` + path + `","line":4,"time":"2026-11-28T02:00:07Z","ip":"198.51.100.40","event":"auth_failure","filter":"postfix","user":"admin"}`,
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("got %d lines, want %d matches and a summary:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d\n got %s\nwant %s", i+1, lines[i], w)
		}
	}
	if s := lines[len(lines)-1]; !strings.HasPrefix(s, `{"type":"summary","files":1,"lines":5,"skipped":0,"matched":3,"unparsable_time":0,"addresses":2,"events":{"auth_failure":2,"pregreet":1},"seconds":`) {
		t.Errorf("summary %s", s)
	}
}

func TestTestHumanAndStdin(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBanctl(t, string(data), "test", "--config", t.TempDir(), "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"read:      5 lines in 1 file(s)",
		"matched:   3 lines, 3 events from 2 addresses",
		"auth_failure     2",
		"pregreet         1",
		"198.51.100.40",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTestErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.toml")
	if err := os.WriteFile(broken, []byte("[[rule]]\nevent = \"auth_failure\"\nregex = '(<HOST>'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := testLog(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no files", []string{"test"}, "usage: banctl test"},
		{"unreadable file", []string{"test", "--config", dir, filepath.Join(dir, "nope.log")}, "nope.log: no such file or directory"},
		{"unknown filter", []string{"test", "--config", dir, "--filter", "nosuch", log}, `no filter "nosuch"`},
		{"broken filter", []string{"test", "--filter", broken, log}, broken + ":3: rule 1: regex: error parsing regexp: missing closing )"},
		{"bad flag", []string{"test", "--nope", log}, "flag provided but not defined: -nope"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runBanctl(t, "", tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q lacks %q", errOut, tt.want)
			}
		})
	}
}

// banctl test --jail replays a log through the jail and prints the bans it
// would make, with the log's own times.
func TestTestJailReplay(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "mail.log")
	var lines []string
	for i := 0; i < 3; i++ {
		lines = append(lines, fmt.Sprintf("Nov 28 05:00:0%d mx postfix/postscreen[2]: PREGREET 14 after 0.08 from [203.0.113.9]:5941%d: EHLO ylmf-pc\\r\\n", i, i))
	}
	for i := 1; i <= 3; i++ {
		lines = append(lines, fmt.Sprintf("Nov 28 05:01:0%d mx postfix/smtpd[1]: warning: unknown[198.51.100.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", i, i))
	}
	if err := os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"test", "--jail", "postfix", "--config", filepath.Join(dir, "none"), "--json", log}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		`{"type":"ban","ip":"203.0.113.9","prefix":"203.0.113.9/32","jail":"postfix","time":"`,
		`"reason":"instant pregreet"`,
		`"attempts_through":4,"attempts_stopped":2`,
		`"bans":1,"address_bans":1,"prefix_bans":0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	if code := run(context.Background(), []string{"test", "--jail", "nope", "--config", dir, log}, nil, &out, &errb); code != 2 {
		t.Errorf("an unknown jail: exit %d", code)
	}
}
