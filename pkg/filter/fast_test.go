package filter

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// shippedRules compiles every shipped filter and returns its rules and
// ignore rules.
func shippedRules(t testing.TB) []*rule {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "filters", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no shipped filters")
	}
	var rules []*rule
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Compile(filepath.Base(path), path, data)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, f.rules...)
		rules = append(rules, f.ignores...)
	}
	return rules
}

// testLines returns the lines of the filters' test logs and the corpus, and
// every suffix of each that starts after a blank: the texts rules see.
func testLines(t testing.TB) [][]byte {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join("..", "..", "filters", "testdata", "*.log"))
	corpus, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "fail2ban", "*.log"))
	var out [][]byte
	for _, path := range append(logs, corpus...) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := append([]byte(nil), sc.Bytes()...)
			for i := 0; i < len(line); i++ {
				if i == 0 || line[i-1] == ' ' {
					out = append(out, line[i:])
				}
			}
		}
	}
	return out
}

// sameAsRegexp checks the fast matcher against package regexp on text.
func sameAsRegexp(t testing.TB, re *regexp.Regexp, p *fastProg, text []byte) {
	t.Helper()
	if !isASCII(text) {
		return
	}
	want := re.FindSubmatchIndex(text)
	caps := make([]int, p.ncap)
	matched, ok := p.match(text, caps)
	if !ok {
		return // too long for the memo: regexp answers
	}
	if !matched {
		caps = nil
	}
	if !slices.Equal(caps, want) {
		t.Fatalf("regex %s\ntext %q\nfast   %v\nregexp %v", re, text, caps, want)
	}
}

func TestFastMatchesRegexp(t *testing.T) {
	rules := shippedRules(t)
	lines := testLines(t)
	fast, matches := 0, 0
	for _, r := range rules {
		if r.fast == nil {
			t.Logf("left to package regexp: %s", r.re)
			continue
		}
		fast++
		for _, l := range lines {
			sameAsRegexp(t, r.re, r.fast, l)
			if r.re.Match(l) {
				matches++
			}
		}
	}
	t.Logf("%d of %d rules run on the fast matcher; %d matching texts compared", fast, len(rules), matches)
	if fast < len(rules)*9/10 {
		t.Errorf("only %d of %d rules compile for the fast matcher", fast, len(rules))
	}
	if min := minMatches(t); matches < min {
		t.Errorf("only %d matching texts (want %d): the test lines are missing", matches, min)
	}
}

// Regexes for the engine's own tests: loops, alternations, laziness,
// captures in loops, assertions, case folding.
var fastPatterns = []string{
	`^(?:a|ab)(c|bcd)(d*)`,
	`^(a+)(a*?)(b?)b`,
	`^(?:(x)|y)*z`,
	`^(?:[^)]*(?:\)(?:[^ )][^)]*| (?:[^\[)][^)]*)?)?)*)\) \[(\d+)\]`,
	`^(?i:helo|EhLo) (.*?) *$`,
	`^x\b(\w+)\B.`,
	`^(?:user=<(.*)>, )?rip=([0-9.]+)(?:, .*)?$`,
	`^a{2,4}?(a{0,2})$`,
	`^(?:ab|a)(?:bc|c)?$`,
	`^(.)(.)?(.)??x`,
}

func TestFastPatterns(t *testing.T) {
	texts := []string{"", "a", "abcd", "abcdd", "aaab", "xyxyz", "xz", "yz", "ab) [12]", "x) [1) [2]", "HELO  ylmf ", "ehlo x",
		"xab cd", "user=<a>, rip=1.2.3.4>, rip=5.6.7.8, lip=x", "rip=1.2.3.4", "aaaa", "aaaaaa", "abc", "ac", "abx", "ax", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"}
	for _, pat := range fastPatterns {
		re := regexp.MustCompile(pat)
		p := compileFast(pat)
		if p == nil {
			t.Errorf("%s: not compiled for the fast matcher", pat)
			continue
		}
		for _, s := range texts {
			sameAsRegexp(t, re, p, []byte(s))
		}
	}
}

func TestFastRefuses(t *testing.T) {
	for _, pat := range []string{`^(a*)*b`, `^é`, `^(?m)a$`, `^(?:x?)+y`, `^(?:0)|0()`, `^(?:a)|(b)`, `a`} {
		if compileFast(pat) != nil {
			t.Errorf("%s compiled for the fast matcher; it should be left to regexp", pat)
		}
	}
}

// FuzzFastMatchesRegexp runs random texts through the shipped rules and the
// engine's test patterns, and random patterns over random texts.
func FuzzFastMatchesRegexp(f *testing.F) {
	rules := shippedRules(f)
	for _, l := range testLines(f)[:200] {
		f.Add(uint(0), "", string(l))
	}
	for i, p := range fastPatterns {
		f.Add(uint(i), p, "abcd")
	}
	f.Fuzz(func(t *testing.T, i uint, pattern, text string) {
		r := rules[i%uint(len(rules))]
		if r.fast != nil {
			sameAsRegexp(t, r.re, r.fast, []byte(text))
		}
		re, err := regexp.Compile("^(?:" + pattern + ")")
		if err != nil {
			return
		}
		if p := compileFast("^(?:" + pattern + ")"); p != nil {
			sameAsRegexp(t, re, p, []byte(text))
		}
	})
}

// minMatches is how many rule matches the filters' test lines must give:
// fewer when the labelled corpus beside the repository is absent (a
// checkout on its own).
func minMatches(t testing.TB) int {
	corpus, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "fail2ban", "*.log"))
	if len(corpus) == 0 {
		t.Log("the corpus in ../shared/corpus/fail2ban is absent: only the filters' own test logs are used")
		return 150
	}
	return 300
}

// TestFastConstructs checks the matcher's special cases against package
// regexp: each pattern must compile to the op named, and each text takes
// one of its paths.
func TestFastConstructs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pat   string
		op    fastOp // an op the program must hold
		texts []string
	}{
		// fLit8: a word compare away from the end, the shifted word that
		// ends with the text near it, a byte compare in a short text.
		{"lit8", `^x+(abc)$`, fLit8, []string{"xxabc", "xxabd", "xab", "xxxxxxxabc", "xxxxxxxabd", "xxxxxxxxxxxxabc", "xxxxxxxxxxxxabcd", "abc"}},
		{"lit8 full word", `^x*(abcdefgh)`, fLit8, []string{"abcdefgh", "xabcdefgh", "xxxxabcdefgh", "xxxxabcdefgx", "abcdefg", "xxxxxxxxabcdefgh!",
			"xxxxxxxxxabcdefg"}}, // 16 bytes: reading 8 at the last 7 would go past the end
		// fRunDet: the shortest run, a bounded run, the end of the text as
		// what may follow, a byte that may not.
		{"rundet min", `^([a-z]+)=(\d+)`, fRunDet, []string{"ab=1", "=1", "ab=", "abc=123x", "ab1=2"}},
		{"rundet max", `^(\d{1,3})\.(\d{1,3})$`, fRunDet, []string{"1.2", "123.45", "1234.5", "12.3456", ".1", "1."}},
		{"rundet end", `^([a-z]+)(?:=|$)`, fRunDet, []string{"abc", "abc=", "abc;", "", "ab c"}},
		// Saves while a choice is open go on the trail and are undone;
		// saves before any choice need not be.
		{"undo", `^(x)(?:(a)b|(a)c)(y)?`, fSave, []string{"xab", "xac", "xacy", "xad", "yac"}},
		{"undo in loop", `^(?:(a)|(b))*c`, fSave, []string{"abac", "bbc", "aab", "c"}},
		// admitSet: a split's branches checked by table, the end of the
		// text included.
		{"first", `^a(?:b|$)(c?)`, fSplit, []string{"a", "ab", "abc", "ac", ""}},
	} {
		re := regexp.MustCompile(tc.pat)
		p := compileFast(tc.pat)
		if p == nil {
			t.Errorf("%s: %s not compiled for the fast matcher", tc.name, tc.pat)
			continue
		}
		if !slices.ContainsFunc(p.insts, func(in fastInst) bool { return in.op == tc.op }) {
			t.Errorf("%s: %s compiles without op %d", tc.name, tc.pat, tc.op)
		}
		for _, s := range tc.texts {
			sameAsRegexp(t, re, p, []byte(s))
		}
	}
}
