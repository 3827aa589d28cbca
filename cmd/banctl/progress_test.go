package main

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/offline"
)

func TestRenderProgress(t *testing.T) {
	mid := offline.ProgressCounts{Bytes: 452, Lines: 1234567, Matched: 12345}
	tests := []struct {
		name    string
		counts  offline.ProgressCounts
		total   int64
		elapsed time.Duration
		width   int
		want    string
	}{
		{"bar", mid, 1000, 490 * time.Millisecond, 80,
			` 45.2% [========>         ] 1.23M lines  2.52M lines/s  12.3k matched  ETA 0:01`},
		{"wider bar", mid, 1000, 490 * time.Millisecond, 100,
			` 45.2% [=================>                    ] 1.23M lines  2.52M lines/s  12.3k matched  ETA 0:01`},
		{"no room for the bar", mid, 1000, 490 * time.Millisecond, 60,
			` 45.2% 1.23M lines  2.52M lines/s  12.3k matched  ETA 0:01`},
		{"matched goes", mid, 1000, 490 * time.Millisecond, 50,
			` 45.2% 1.23M lines  2.52M lines/s  ETA 0:01`},
		{"lines/s goes", mid, 1000, 490 * time.Millisecond, 40,
			` 45.2% 1.23M lines  ETA 0:01`},
		{"lines go", mid, 1000, 490 * time.Millisecond, 20,
			` 45.2% ETA 0:01`},
		{"percent only", mid, 1000, 490 * time.Millisecond, 10, `45.2%`},
		{"too narrow", mid, 1000, 490 * time.Millisecond, 5, ``},
		{"no width", mid, 1000, 490 * time.Millisecond, 0, ``},
		{"no total", mid, -1, 490 * time.Millisecond, 80,
			`1.23M lines  2.52M lines/s  12.3k matched`},
		{"no total, narrow", mid, -1, 490 * time.Millisecond, 30,
			`1.23M lines  2.52M lines/s`},
		{"no total, narrower", mid, -1, 490 * time.Millisecond, 8, `1.23M`},
		{"start", offline.ProgressCounts{}, 5 << 30, 0, 80,
			`  0.0% [>                            ] 0 lines  0 lines/s  0 matched  ETA --:--`},
		{"start, no total", offline.ProgressCounts{}, -1, 0, 80,
			`0 lines  0 lines/s  0 matched`},
		{"almost done is not 100%", offline.ProgressCounts{Bytes: 9999, Lines: 7, Matched: 1}, 10000, time.Second, 80,
			` 99.9% [=============================>] 7 lines  7 lines/s  1 matched  ETA 0:01`},
		{"done", offline.ProgressCounts{Bytes: 10000, Lines: 7, Matched: 1}, 10000, time.Second, 80,
			`100.0% [==============================] 7 lines  7 lines/s  1 matched  ETA 0:00`},
		{"file grew while read", offline.ProgressCounts{Bytes: 20000, Lines: 7, Matched: 1}, 10000, time.Second, 80,
			`100.0% [==============================] 7 lines  7 lines/s  1 matched  ETA 0:00`},
		{"empty file", offline.ProgressCounts{}, 0, time.Second, 80,
			`100.0% [==============================] 0 lines  0 lines/s  0 matched  ETA 0:00`},
		{"huge", offline.ProgressCounts{Bytes: 1 << 40, Lines: math.MaxInt64, Matched: 999_999_999_999}, 1 << 50, time.Hour, 80,
			`  0.0% [>               ] 9.22E lines  2.56P lines/s  1.00T matched  ETA 42d15h`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renderProgress(progressState{ProgressCounts: tt.counts, Total: tt.total, Elapsed: tt.elapsed}, tt.width)
			if got != tt.want {
				t.Errorf("width %d\n got %q\nwant %q", tt.width, got, tt.want)
			}
			if tt.width > 0 && len(got) > tt.width-1 {
				t.Errorf("%d columns, more than %d", len(got), tt.width-1)
			}
		})
	}
}

func TestHumanCount(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{0.4, "0"},
		{1, "1"},
		{9999, "9999"},
		{9999.5, "10.0k"},
		{12345, "12.3k"},
		{99949, "99.9k"},
		{99950, "100k"},
		{999499, "999k"},
		{999500, "1.00M"},
		{2.5e6, "2.50M"},
		{1e9, "1.00G"},
		{9.2e18, "9.20E"},
		{1e21, ">999E"},
		{math.Inf(1), ">999E"},
		{-1, "?"},
		{math.NaN(), "?"},
	}
	for _, tt := range tests {
		if got := humanCount(tt.v); got != tt.want {
			t.Errorf("humanCount(%g) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestFormatETA(t *testing.T) {
	tests := []struct {
		bytes, total int64
		elapsed      time.Duration
		want         string
	}{
		{0, 100, time.Second, "--:--"},
		{10, 100, 0, "--:--"},
		{100, 100, time.Second, "0:00"},
		{50, 100, 7 * time.Second, "0:07"},
		{50, 100, 6500 * time.Millisecond, "0:07"}, // rounded up
		{1, 100, 10 * time.Second, "16:30"},
		{1, 100, 2 * time.Minute, "3:18:00"},
		{1, 100, 15 * time.Minute, "1d00h"}, // 24h45m: days and hours
		{1, 1 << 40, time.Hour, ">999d"},
	}
	for _, tt := range tests {
		s := progressState{ProgressCounts: offline.ProgressCounts{Bytes: tt.bytes}, Total: tt.total, Elapsed: tt.elapsed}
		if got := formatETA(s); got != tt.want {
			t.Errorf("%d of %d bytes in %v: %q, want %q", tt.bytes, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

// The progress bar's percent needs the inputs' total size: known for
// files, and for standard input redirected from one, not for a pipe.
func TestInputsTotal(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	for name, data := range map[string]string{a: strings.Repeat("x\n", 50), b: strings.Repeat("y\n", 7)} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stdinFile, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer stdinFile.Close()
	if _, err := stdinFile.Seek(4, io.SeekStart); err != nil { // as a shell that read part of it leaves it
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // a writer, so that opening it to read does not wait
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	tests := []struct {
		name  string
		files []string
		stdin io.Reader
		want  int64
	}{
		{"files", []string{a, b}, nil, 114},
		{"stdin from a file", []string{"-"}, stdinFile, 10},
		{"file and stdin from a file", []string{a, "-"}, stdinFile, 110},
		{"stdin from a pipe", []string{a, "-"}, pr, -1},
		{"stdin from a reader", []string{"-", a}, strings.NewReader("z\n"), -1},
		{"a fifo", []string{a, fifo}, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, total, closeAll, err := openInputs(tt.files, tt.stdin)
			defer closeAll()
			if err != nil {
				t.Fatal(err)
			}
			if total != tt.want {
				t.Errorf("total %d, want %d", total, tt.want)
			}
		})
	}
}
