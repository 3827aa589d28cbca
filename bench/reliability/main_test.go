package main

import (
	"os"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	f, err := os.Open("testdata/sample.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	results, err := read(f)
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := render(results, "make soak")
	if ok {
		t.Error("a failed test and tests that did not run: want not ok")
	}
	row := func(test string) string {
		for _, l := range strings.Split(doc, "\n") {
			if strings.Contains(l, "`"+test+"`") {
				return l
			}
		}
		t.Fatalf("no row for %s in:\n%s", test, doc)
		return ""
	}
	for _, c := range []struct{ test, want string }{
		// The RELIABILITY line stands for the test's figures; a | in it is escaped.
		{"TestChaosKill", `pass (12.5 s) | chaos: 5 SIGKILL cycles \| 100 lines |`},
		{"TestFaultLogFiles", "fail (3.0 s) | fifo: pass (banned from the new regular file 800ms after it replaced the FIFO); symlink: fail |"},
		{"TestSoak", "skip (0.0 s)"},
		{"TestFaultNoNetAdmin", "did not run"},
	} {
		if r := row(c.test); !strings.Contains(r, c.want) {
			t.Errorf("row of %s:\n%s\nwant it to hold %q", c.test, r, c.want)
		}
	}
	if strings.Contains(doc, "msg=ban") {
		t.Error("the daemon's own log lines are in the document")
	}
}

func TestRenderFuzz(t *testing.T) {
	f, err := os.Open("testdata/fuzz.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runs, err := readFuzz(f)
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := renderFuzz(runs, parseTargets("FuzzLoad:./pkg/config:3000 FuzzMatch:./pkg/filter:150000 FuzzServer:./pkg/control:100000"), "5m")
	if ok {
		t.Error("a failed run and a target that did not run: want not ok")
	}
	for _, want := range []string{
		"| `FuzzLoad` | pkg/config | pass (8 s) | 250 in 8s (31/s) | 246 entries, 0 new |",
		// A failure shows what the target reported and where the input went.
		"| `FuzzMatch` | pkg/filter | fail (4 s): fuzz_test.go:61: matched 198.51.100.9 from the user field; Failing input written to testdata/fuzz/FuzzMatch/0123abcd",
		"| 41,200 in 3s (13,733/s) | 120 entries, 2 new |",
		"| `FuzzInjection` | . | pass (3 s) | none: still baseline coverage: 300/509 completed |",
		"| `FuzzServer` | ./pkg/control | did not run |",
		"`go test -fuzz -fuzztime 5m`",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the fuzzing section lacks %q:\n%s", want, doc)
		}
	}
}
