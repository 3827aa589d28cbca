package banwatch_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/offline"
)

var update = flag.Bool("update", false, "rewrite filters/testdata/*.golden from the current filters")

// goldenRef is the reference time of the golden files: their syslog lines
// carry no year and IceWarp's no date.
var goldenRef = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// TestGolden runs every shipped filter over filters/testdata/NAME.log and
// compares the events, as `banctl test --json` prints them, with
// filters/testdata/NAME.golden. Run with -update to rewrite the golden files,
// then read the diff: each line of a golden file is a claim that that log
// line is an attack from that address.
func TestGolden(t *testing.T) {
	filters, err := config.LoadFilters("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range filters {
		t.Run(f.Name, func(t *testing.T) {
			logPath := filepath.Join("filters", "testdata", f.Name+".log")
			data, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatalf("every shipped filter needs test lines: %v", err)
			}
			got := runFilter(t, f, "testdata/"+f.Name+".log", data)
			goldenPath := filepath.Join("filters", "testdata", f.Name+".golden")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("events differ from %s (run with -update and read the diff):\n%s", goldenPath, lineDiff(string(want), string(got)))
			}
		})
	}
}

func runFilter(t *testing.T, f *filter.Filter, name string, data []byte) []byte {
	t.Helper()
	set, err := filter.NewSet(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	_, err = offline.Run(context.Background(), set, []offline.Input{{Name: name, R: bytes.NewReader(data), Ref: goldenRef}}, func(m *offline.Match) {
		out = offline.AppendJSON(out, m)
		out = append(out, '\n')
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
