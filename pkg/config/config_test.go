package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFiltersShipped(t *testing.T) {
	fs, err := LoadFilters(filepath.Join(t.TempDir(), "missing"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	if !strings.Contains(","+strings.Join(names, ",")+",", ",postfix,") {
		t.Errorf("shipped filters %v lack postfix", names)
	}
}

func TestLoadFiltersOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "filters", "postfix.toml"), `
program = 'postfix/smtpd'
[[rule]]
event = "relay_denied"
regex = 'my own rule for \[<HOST>\]'
`)
	writeFile(t, filepath.Join(dir, "filters", "local.toml"), `
[[rule]]
event = "auth_failure"
regex = 'local failure from <HOST>$'
`)
	fs, err := LoadFilters(dir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, f := range fs {
		byName[f.Name] = i
	}
	p, ok := byName["postfix"]
	if !ok {
		t.Fatal("no postfix filter")
	}
	if fs[p].Rules() != 1 {
		t.Errorf("postfix has %d rules: the file in the config directory did not replace the shipped one", fs[p].Rules())
	}
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	if ev, ok := fs[p].Match([]byte("Nov 28 01:00:00 mx postfix/smtpd[1]: my own rule for [192.0.2.1]"), ref); !ok || ev.Kind != "relay_denied" {
		t.Errorf("override does not match: %v %+v", ok, ev)
	}
	if _, ok := byName["local"]; !ok {
		t.Error("the added filter is missing")
	}
	f, err := FindFilter(dir, "local")
	if err != nil || f.Name != "local" {
		t.Errorf("FindFilter(local) = %v, %v", f, err)
	}
}

func TestLoadFiltersBroken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "filters", "broken.toml")
	writeFile(t, path, "[[rule]]\nevent = \"auth_failure\"\nregex = 'no host here'\n")
	_, err := LoadFilters(dir)
	if err == nil {
		t.Fatal("a broken filter loaded")
	}
	if want := path + ":3: rule 1: regex has no <HOST>"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestFindFilterByPathAndMissing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.toml")
	writeFile(t, path, "[[rule]]\nevent = \"pregreet\"\nregex = 'talked first: <HOST>$'\n")
	f, err := FindFilter("", path)
	if err != nil || f.Name != "x" {
		t.Fatalf("FindFilter(path) = %v, %v", f, err)
	}
	if _, err := FindFilter("", "nosuchfilter"); err == nil || !strings.Contains(err.Error(), `no filter "nosuchfilter"`) {
		t.Errorf("err = %v", err)
	}
}
