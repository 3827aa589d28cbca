package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// banctl --version (and banctl version) print the version and the commit,
// with no daemon to ask.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{arg}, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", arg, code, errb.String())
		}
		if got := out.String(); !strings.HasPrefix(got, "banctl ") || !strings.Contains(got, "(commit ") {
			t.Errorf("%s printed %q", arg, got)
		}
	}
}
