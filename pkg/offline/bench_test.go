package offline_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/banwatch/banwatch/bench/loggen"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/offline"
)

// benchLog is a generated Postfix log: 80% benign lines, 20% from attack
// sessions of 50,000 addresses.
func benchLog(b *testing.B, rfc3339 bool) []byte {
	b.Helper()
	var buf bytes.Buffer
	if err := loggen.Postfix(&buf, loggen.Options{Lines: 500000, AttackShare: 0.2, Attackers: 50000, Seed: 1, RFC3339: rfc3339}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func benchRun(b *testing.B, names []string, rfc3339 bool) {
	log := benchLog(b, rfc3339)
	lines := bytes.Count(log, []byte("\n"))
	var filters []*filter.Filter
	for _, n := range names {
		f, err := config.FindFilter("", n)
		if err != nil {
			b.Fatal(err)
		}
		filters = append(filters, f)
	}
	if len(names) == 0 {
		var err error
		if filters, err = config.LoadFilters(""); err != nil {
			b.Fatal(err)
		}
	}
	set, err := filter.NewSet(filters...)
	if err != nil {
		b.Fatal(err)
	}
	ref := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(log)))
	b.ResetTimer()
	var rep *offline.Report
	for i := 0; i < b.N; i++ {
		rep, err = offline.Run(context.Background(), set, []offline.Input{{Name: "mail.log", R: bytes.NewReader(log), Ref: ref}}, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if rep.Matched == 0 || rep.Lines != lines {
		b.Fatalf("read %d of %d lines, matched %d", rep.Lines, lines, rep.Matched)
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(rep.Matched)/float64(rep.Lines), "matched/line")
}

// BenchmarkRunPostfix is `banctl test --filter postfix` on a mixed log.
func BenchmarkRunPostfix(b *testing.B) { benchRun(b, []string{"postfix"}, false) }

// BenchmarkRunPostfixRFC3339 is the same with RFC 3339 timestamps.
func BenchmarkRunPostfixRFC3339(b *testing.B) { benchRun(b, []string{"postfix"}, true) }

// BenchmarkRunAllFilters is `banctl test` without --filter: every shipped
// filter on every line.
func BenchmarkRunAllFilters(b *testing.B) { benchRun(b, nil, false) }
