package filter

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/logtime"
)

// TestMatcherMatchesSet reads the filters' test logs and the corpus, each
// log with one Matcher of every shipped filter together, and checks that
// each line gives exactly what Set.Match gives, for references that make
// the Matcher's caches miss and hit.
func TestMatcherMatchesSet(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "filters", "*.toml"))
	var filters []*Filter
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Compile(filepath.Base(path), path, data)
		if err != nil {
			t.Fatal(err)
		}
		filters = append(filters, f)
	}
	set, err := NewSet(filters...)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join("..", "..", "filters", "testdata", "*.log"))
	corpus, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "fail2ban", "*.log"))
	refs := []time.Time{
		time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		time.Date(2005, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)),
	}
	events := 0
	for _, path := range append(logs, corpus...) {
		for _, ref := range refs {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			m := set.NewMatcher()
			sc := bufio.NewScanner(f)
			for n := 1; sc.Scan(); n++ {
				want := set.Match(sc.Bytes(), ref, nil)
				got := m.Match(sc.Bytes(), ref, nil)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s:%d: Matcher gave %+v, Set.Match %+v", path, n, got, want)
				}
				events += len(got)
				if _, want := logtime.Len(sc.Bytes()); m.Timed(sc.Bytes()) != want {
					t.Fatalf("%s:%d: Timed gave %v, logtime.Len %v", path, n, !want, want)
				}
			}
			f.Close()
		}
	}
	if events < minMatches(t) {
		t.Errorf("only %d events: the test logs are missing", events)
	}
}
