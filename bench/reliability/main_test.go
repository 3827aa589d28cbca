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
