package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "mail.log")
	writeFile(t, logPath, "")
	writeFile(t, filepath.Join(dir, "jails", "local.toml"), fmt.Sprintf("[postfix]\nlogs = [%q, \"/nonexistent/maillog\"]\n[sshd]\nenabled = false\n", logPath))
	var out, errb bytes.Buffer
	if code := run([]string{"--check", "--config", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"configuration " + dir + ": valid",
		"jail postfix: runs (enabled = auto, " + filepath.Join(dir, "jails", "local.toml") + ")",
		"  ports 25, 465, 587",
		"  log " + logPath + " (present)",
		"  log /nonexistent/maillog (absent)",
		"jail sshd: disabled",
		"jail icewarp: waits for its logs",
		"  filter postfix; 5 strikes in 10m0s ban for 7d",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("--check output lacks %q:\n%s", want, got)
		}
	}
}

func TestCheckRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "jails", "bad.toml"), "[postfix]\n\nban_time = \"forever\"\n")
	var out, errb bytes.Buffer
	if code := run([]string{"--check", "--config", dir}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	want := filepath.Join(dir, "jails", "bad.toml") + ":3: postfix.ban_time: bad duration \"forever\""
	if !strings.Contains(errb.String(), want) {
		t.Errorf("error %q lacks %q", errb.String(), want)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}, {"extra"}, {"--nope"}} {
		var out, errb bytes.Buffer
		if code := run(append(args, "--config", os.DevNull), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// --version prints the program, its version and its commit, and exits 0
// without reading a configuration.
func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version", "--config", "/nonexistent"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "banwatchd ") || !strings.Contains(got, "(commit ") {
		t.Errorf("--version printed %q", got)
	}
}
