package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// The testdata files are the tools' real output for the first 20,000 lines
// of `genlog -seed 1`.
func TestCounts(t *testing.T) {
	tests := []struct {
		file    string
		count   func([]byte) (int, error)
		want    int
		wantErr string
	}{
		{"banctl-20000.txt", banctlMatched(20000), 3197, ""},
		{"banctl-20000.txt", banctlMatched(30000), 0, "read 20000 lines of 30000"},
		{"fail2ban-aggressive-20000.txt", fail2banMatched(20000), 3582, ""},
		{"fail2ban-normal-20000.txt", fail2banMatched(20000), 833, ""},
		{"fail2ban-normal-20000.txt", fail2banMatched(100), 0, "read 20000 lines of 100"},
		{"banctl-20000.txt", fail2banMatched(20000), 0, "no \"Lines: ... matched\""},
		{"fail2ban-normal-20000.txt", banctlMatched(20000), 0, "no \"read:\" and \"matched:\""},
	}
	for _, tt := range tests {
		out, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tt.count(out)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one with %q", tt.file, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.file, err)
		case got != tt.want:
			t.Errorf("%s: %d, want %d", tt.file, got, tt.want)
		}
	}
}

func TestHeadWriter(t *testing.T) {
	for _, tt := range []struct {
		writes []string
		lines  int
		want   string
	}{
		{[]string{"a\nb\nc\n"}, 2, "a\nb\n"},
		{[]string{"a", "\nb", "\nc\n", "d\n"}, 2, "a\nb\n"},
		{[]string{"a\n", "b\n"}, 5, "a\nb\n"},
		{[]string{"a\n", "b\n"}, 0, ""},
	} {
		var b bytes.Buffer
		h := &headWriter{w: &b, lines: tt.lines}
		for _, s := range tt.writes {
			if n, err := h.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if b.String() != tt.want {
			t.Errorf("%q, %d lines: %q, want %q", tt.writes, tt.lines, b.String(), tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 9 * s}, 3 * s},
	} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func sampleTools() []*tool {
	return []*tool{
		{Name: "banwatch", Display: "taskset -c 0 banctl test", Lines: 1000000, Unit: "lines", matched: 160172,
			wall: []time.Duration{900 * time.Millisecond, 800 * time.Millisecond, time.Second}, cpu: []time.Duration{800 * time.Millisecond}},
		{Name: "sshguard 2.4.2", Display: "taskset -c 0 sshg-parser < x.log", Lines: 1000000, Unit: "reports", matched: 99875,
			wall: []time.Duration{3200 * time.Millisecond}, cpu: []time.Duration{3 * time.Second}},
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, sampleTools(), config{seed: 1, clock: "wall"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per tool:\n%s", len(lines), b.String())
	}
	var r result
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	want := result{Bench: "compare", Tool: "sshguard 2.4.2", Command: "taskset -c 0 sshg-parser < x.log", Log: "postfix", Seed: 1,
		Lines: 1000000, Runs: 1, Seconds: 3.2, RunSeconds: []float64{3.2}, CPUSeconds: 3, Clock: "wall", LinesPerSecond: 312500,
		Matched: 99875, MatchedUnit: "reports", BanwatchSpeedup: 3.56}
	if got, _ := json.Marshal(r); !bytes.Equal(got, mustJSON(t, want)) {
		t.Errorf("got  %s\nwant %s", got, mustJSON(t, want))
	}
}

func TestWriteTable(t *testing.T) {
	for clock, wants := range map[string][]string{
		"wall": {
			"| banwatch | `taskset -c 0 banctl test` | 1,000,000 | 0.900 | 0.800 | 1,111,111 | 160,172 lines (16.0%) | — |",
			"| sshguard 2.4.2 | `taskset -c 0 sshg-parser < x.log` | 1,000,000 | 3.200 | 3.000 | 312,500 | 99,875 reports (10.0%) | 3.6× faster |",
			"banwatch/sshguard 2.4.2: 3.6×",
		},
		"cpu": {
			"| banwatch | `taskset -c 0 banctl test` | 1,000,000 | 0.900 | 0.800 | 1,250,000 | 160,172 lines (16.0%) | — |",
			"| sshguard 2.4.2 | `taskset -c 0 sshg-parser < x.log` | 1,000,000 | 3.200 | 3.000 | 333,333 | 99,875 reports (10.0%) | 3.8× faster |",
			"banwatch/sshguard 2.4.2: 3.8×",
		},
	} {
		var b bytes.Buffer
		if err := writeTable(&b, sampleTools(), config{seed: 1, cpu: "0", runs: 3, clock: clock}); err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(b.String(), want) {
				t.Errorf("clock %s: no %q in\n%s", clock, want, b.String())
			}
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
