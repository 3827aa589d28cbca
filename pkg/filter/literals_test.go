package filter

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp/syntax"
	"strings"
	"testing"
	"time"
)

func TestRequiredSet(t *testing.T) {
	tests := []struct {
		re   string
		want []string
	}{
		{`abc`, []string{"abc"}},
		{`lost connection after (?:CONNECT|EHLO) from x`, []string{"lost connection after CONNECT from x", "lost connection after EHLO from x"}},
		{`(?:DENYLISTED|BLACKLISTED) \[x\]`, []string{"DENYLISTED [x]", "BLACKLISTED [x]"}},
		{`(?:NOQUEUE: )?lost connection`, []string{"lost connection"}},
		{`(?:fatal: )?Unable to (?:negotiate|agree)`, []string{"Unable to negotiate", "Unable to agree"}},
		{`warning: [\w.-]+\[x\]: SASL \S+ authentication failed:`, []string{" authentication failed:"}},
		{`(?:foo|b)[0-9]+longer text`, []string{"longer text"}},
		{`(?:foobar|\d+)x`, []string{"x"}},
		{`(?i)abcdef`, nil},
		{`x[45]yz`, []string{"x4yz", "x5yz"}},
		{`(?:abcd|efgh)+`, []string{"abcd", "efgh"}},
		{`^abcd$`, []string{"abcd"}},
		{`a(b)c`, []string{"abc"}},
		{`(?:foobar)?baz`, []string{"baz"}},
		{`(?:foobar)+z`, []string{"foobar"}},
		{`x{2,}abc`, []string{"abc"}},
		{`disconnect from \S+ auth=0/`, []string{"disconnect from "}},
	}
	for _, tt := range tests {
		re, err := syntax.Parse(tt.re, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		got := requiredSet(re.Simplify())
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("requiredSet(%q) = %q, want %q", tt.re, got, tt.want)
		}
	}
}

func TestGivenLiteral(t *testing.T) {
	tests := []struct {
		re, lit string
		want    bool
	}{
		{`disconnect from \S+ auth=0/\d+`, " auth=0/", true},
		{`disconnect from \S+ auth=0/\d+`, "auth", true},
		{`disconnect from \S+(?: auth=0/\d+)?`, " auth=0/", false},
		{`lost connection after (?:CONNECT|EHLO)`, "after ", true},
		{`(?:CONNECT|EHLO) from`, "CONNECT", false},
	}
	for _, tt := range tests {
		re, err := syntax.Parse(tt.re, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if got := givenLiteral(re.Simplify(), tt.lit); got != tt.want {
			t.Errorf("givenLiteral(%q, %q) = %v, want %v", tt.re, tt.lit, got, tt.want)
		}
	}
}

// TestPrefilterNeverHidesAMatch runs every rule of every shipped filter on
// every line of the filters' test logs and of the labelled corpus, bypassing
// the prefilter: wherever a rule's regex matches, the line must hold one of
// the rule's literal strings, or the prefilter would have hidden the match.
func TestPrefilterNeverHidesAMatch(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "filters", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no shipped filters")
	}
	logs, _ := filepath.Glob(filepath.Join("..", "..", "filters", "testdata", "*.log"))
	corpus, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "fail2ban", "*.log"))
	logs = append(logs, corpus...)
	var lines [][]byte
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			lines = append(lines, append([]byte(nil), sc.Bytes()...))
		}
	}
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	matched := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Compile(strings.TrimSuffix(filepath.Base(path), ".toml"), path, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			lc := lineCtx{line: line, ref: ref}
			ends := [8]int{-2, -2, -2, -2, -2, -2, -2, -2}
			for _, r := range append(append([]*rule(nil), f.rules...), f.ignores...) {
				text, ok := f.text(r, &lc, watch{f.set, nil, 0}, &ends)
				if !ok || !r.re.Match(text) {
					continue
				}
				matched++
				held := false
				for _, l := range r.literals {
					held = held || bytes.Contains(text, []byte(l))
				}
				if !held {
					t.Errorf("%s: a rule matches %q but the line holds none of %q", f.Name, line, r.literals)
				}
			}
		}
	}
	if min := minMatches(t); matched < min {
		t.Errorf("only %d rule matches (want %d): the test lines are missing", matched, min)
	}
}
