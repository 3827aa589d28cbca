package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPatternListerWaitsForTheDirectory(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "s*.log")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	var l patternLister
	t0 := time.Now()
	steps := []struct {
		what  string
		at    time.Duration
		touch bool // a file is created first
		want  bool
	}{
		{"first scan", 0, false, true},
		{"nothing changed", 2 * time.Second, false, false},
		{"still nothing", 30 * time.Second, false, false},
		{"a new file", 32 * time.Second, true, true},
		{"the directory changed just now: again", 33 * time.Second, false, true},
		{"settled", 40 * time.Second, false, false},
		{"a minute since the last listing", 95 * time.Second, false, true},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		if s.touch {
			if err := os.WriteFile(filepath.Join(dir, "s20261128.log"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(dir, now.Add(-time.Second), now.Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if got := l.due(pattern, now); got != s.want {
			t.Errorf("%s: due = %v, want %v", s.what, got, s.want)
		}
	}

	// Wildcards in the directory part: listed every time.
	var w patternLister
	for i := range 3 {
		if !w.due(filepath.Join(dir, "*", "s*.log"), t0.Add(time.Duration(i)*patternScan)) {
			t.Errorf("scan %d of a pattern with a wildcard directory: not due", i)
		}
	}
}

// BenchmarkPatternScan is one scan of an IceWarp-like log directory with
// three years of daily files, by a full listing (newestMatch) and by the
// lister when the directory has not changed.
//
//	go test -run '^$' -bench PatternScan ./pkg/daemon
func BenchmarkPatternScan(b *testing.B) {
	dir := b.TempDir()
	for i := range 3 * 365 {
		day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		if err := os.WriteFile(filepath.Join(dir, "s"+day.Format("20060102")+".log"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		b.Fatal(err)
	}
	pattern := filepath.Join(dir, "s*.log")
	b.Run("listing", func(b *testing.B) {
		for b.Loop() {
			if newestMatch(pattern) == "" {
				b.Fatal("no match")
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		var l patternLister
		now := time.Now()
		l.due(pattern, now)
		for b.Loop() {
			if l.due(pattern, now) {
				b.Fatal("due")
			}
		}
	})
}
