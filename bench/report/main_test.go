package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestGroup(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {3112840.4, "3,112,840"}, {20104.6, "20,105"}} {
		if got := group(tt.in); got != tt.want {
			t.Errorf("group(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBenchLine(t *testing.T) {
	for _, tt := range []struct {
		line   string
		name   string
		allocs string
	}{
		{"BenchmarkMatcher/postfix/benign         	 2233764	       522.7 ns/op	 212.36 MB/s	       0 B/op	       0 allocs/op", "BenchmarkMatcher/postfix/benign", "0"},
		{"BenchmarkObserveNotCounted/ignored-2 	 5000000	       146 ns/op	       0 B/op	       1 allocs/op", "BenchmarkObserveNotCounted/ignored", "1"},
		{"ok  	github.com/banwatch/banwatch/pkg/jail	3.4s", "", ""},
	} {
		m := benchLine.FindStringSubmatch(tt.line)
		if tt.name == "" {
			if m != nil {
				t.Errorf("%q matched", tt.line)
			}
			continue
		}
		if m == nil || m[1] != tt.name || m[3] != tt.allocs {
			t.Errorf("%q: %q", tt.line, m)
		}
	}
}

// TestReport prints a report of sample rows and checks the verdicts.
func TestReport(t *testing.T) {
	var b bytes.Buffer
	printReport(&b,
		[]compareRow{
			{Tool: "banwatch", Lines: 1000000, CPUSeconds: 0.32, Clock: "cpu", LinesPerSecond: 3100000},
			{Tool: "fail2ban 1.0.2, aggressive", Lines: 100000, LinesPerSecond: 20000, BanwatchSpeedup: 155},
			{Tool: "sshguard 2.4.2", Lines: 1000000, LinesPerSecond: 421000, BanwatchSpeedup: 7.4},
		},
		[]daemonRow{{Bench: "latency", Measure: "p99", Result: "19.8 ms", Target: "≤ 50 ms", Status: "pass"}},
		[]allocRow{{Name: "BenchmarkMatcher/postfix/benign", Allocs: 0, NsOp: 300}},
		time.Minute)
	out := b.String()
	for _, want := range []string{
		"| filter throughput, mixed Postfix log (banctl test --filter postfix) | 3,100,000 lines/s | ≥ 3,000,000 lines/s | pass |",
		"| … against fail2ban 1.0.2, aggressive | 155× | ≥ 100× | pass |",
		"| … against sshguard 2.4.2 | 7.4× | ≥ 8× | fail |",
		"| latency: p99 | 19.8 ms | ≤ 50 ms | pass |",
		"| allocations, BenchmarkMatcher/postfix/benign | 0 allocs/op (300 ns/op) | 0 per benign line | pass |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
