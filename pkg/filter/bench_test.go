package filter_test

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	banwatch "github.com/banwatch/banwatch"
	"github.com/banwatch/banwatch/bench/loggen"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
)

// benchLines generates a Postfix log (bench/loggen) and splits it into
// lines.
func benchLines(b *testing.B, mta string, attack float64) [][]byte {
	b.Helper()
	var buf bytes.Buffer
	if err := loggen.Write(&buf, mta, loggen.Options{Lines: 100000, AttackShare: attack, Attackers: 20000, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	return lines
}

func shipped(b *testing.B, name string) *filter.Filter {
	b.Helper()
	data, err := banwatch.Defaults.ReadFile("filters/" + name + ".toml")
	if err != nil {
		b.Fatal(err)
	}
	f, err := filter.Compile(name, name+".toml", data)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkMatcher runs one line per op through a Matcher of the shipped
// filter: benign lines only (which must not allocate: see allocs/op), and
// the mixed log of the performance target (16% of lines are events).
func BenchmarkMatcher(b *testing.B) {
	for _, bc := range []struct {
		name, mta string
		attack    float64
	}{
		{"postfix/benign", "postfix", 0},
		{"postfix/mixed", "postfix", 0.2},
		{"exim/benign", "exim", 0},
		{"icewarp/benign", "icewarp", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lines := benchLines(b, bc.mta, bc.attack)
			m := shipped(b, bc.mta).NewMatcher()
			ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			var dst []event.Event
			bytes := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l := lines[i%len(lines)]
				bytes += len(l)
				dst = m.Match(l, ref, dst[:0])
			}
			b.SetBytes(int64(bytes / max(b.N, 1)))
		})
	}
}
