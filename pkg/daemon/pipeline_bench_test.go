package daemon

import (
	"bytes"
	"context"
	"fmt"
	"github.com/banwatch/banwatch/internal/benchref"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/banwatch/banwatch/bench/loggen"
	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/source"
)

// pipelineLog writes a generated Postfix log of n lines whose times end
// about now, so that its events fall inside the jail's window.
func pipelineLog(b *testing.B, path string, n int, attack float64) {
	b.Helper()
	var buf bytes.Buffer
	// loggen advances 0-19 ms per line: n lines span about n*10 ms.
	start := time.Now().Add(-time.Duration(n) * 10 * time.Millisecond)
	if err := loggen.Postfix(&buf, loggen.Options{Lines: n, AttackShare: attack, Attackers: 20000, Seed: 1, Start: start}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPipeline feeds a generated Postfix log (5% and 20% of its lines
// from attack sessions) through the whole daemon in-process: source.File,
// the postfix filter and jail, a real SQLite store in a temporary
// directory, and the "log" firewall. Each iteration also reads the same
// file with bare nxadm/tail (as a plain user would), alternating which goes
// first. It reports the medians of: lines per second from the start until
// the processor has taken the last line ("lines/s"), the same for bare
// nxadm/tail ("bare-lines/s") and their ratio, the process's CPU time per
// line of each, and the daemon's heap allocations per line (the whole
// process's meanwhile, nxadm/tail's own included).
//
//	go test -run '^$' -bench 'Pipeline$' -benchtime 3x ./pkg/daemon
func BenchmarkPipeline(b *testing.B) {
	const n = 1_000_000
	for _, attack := range []float64{0.05, 0.2} {
		b.Run(fmt.Sprintf("attack=%v", attack), func(b *testing.B) {
			var rates, bares, allocs, cpus, bareCPUs []float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b)
				testutil.PostfixJail(b, e.dir, "firewall = \"log\"\n", "find_time = \"24h\"\n")
				var err error
				if e.cfg, err = config.Load(e.dir); err != nil {
					b.Fatal(err)
				}
				pipelineLog(b, e.logPath, n, attack)
				b.StartTimer()
				if i%2 == 1 {
					r, c := bareRate(b, e.logPath, n)
					bares, bareCPUs = append(bares, r), append(bareCPUs, c)
				}
				b.StopTimer()
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				b.StartTimer()
				cpu0 := benchref.CPUTime()
				start := time.Now()
				stop := e.start()
				c := e.client()
				var events, strikes, bans int64
				for {
					st, err := c.Status(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					done := false
					for _, j := range st.Jails {
						if j.Name == "postfix" && j.Lines >= n {
							done, events, strikes, bans = true, j.Events, j.Strikes, j.BansRun
						}
					}
					if done {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				took := time.Since(start)
				cpus = append(cpus, float64(benchref.CPUTime()-cpu0)/n)
				b.StopTimer()
				runtime.ReadMemStats(&m1)
				stop()
				rates = append(rates, n/took.Seconds())
				allocs = append(allocs, float64(m1.Mallocs-m0.Mallocs)/n)
				b.Logf("%d lines, %d events, %d strikes, %d bans in %v: %.0f lines/s", n, events, strikes, bans, took.Round(time.Millisecond), n/took.Seconds())
				b.StartTimer()
				if i%2 == 0 {
					r, c := bareRate(b, e.logPath, n)
					bares, bareCPUs = append(bares, r), append(bareCPUs, c)
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(benchref.Median(rates), "lines/s")
			b.ReportMetric(benchref.Median(bares), "bare-lines/s")
			b.ReportMetric(benchref.Median(rates)/benchref.Median(bares), "daemon/bare")
			b.ReportMetric(benchref.Median(cpus), "cpu-ns/line")
			b.ReportMetric(benchref.Median(bareCPUs), "bare-cpu-ns/line")
			b.ReportMetric(benchref.Median(allocs), "allocs/line")
		})
	}
}

// bareRate tails path with bare nxadm/tail (benchref.BareTail) until it
// has seen n lines, and returns the lines per second and the process's CPU
// time per line.
func bareRate(b *testing.B, path string, n int) (rate, cpu float64) {
	cpu0 := benchref.CPUTime()
	d, err := benchref.BareTail(path, n)
	if err != nil {
		b.Fatal(err)
	}
	return float64(n) / d.Seconds(), float64(benchref.CPUTime()-cpu0) / float64(n)
}

// BenchmarkHandle runs lines of a generated Postfix log through the
// processor's per-line path (filter, jail, batch) without sources or store,
// one op per line: "benign" only the lines that make no event (their
// allocs/op must be 0), "mixed" every line of a log with 5% attack
// sessions; "benign-filter-only" is the filter's own share of "benign".
//
//	go test -run '^$' -bench Handle -benchmem ./pkg/daemon
func BenchmarkHandle(b *testing.B) {
	e := newEnv(b)
	testutil.PostfixJail(b, e.dir, "firewall = \"log\"\n", "find_time = \"24h\"\n")
	cfg, err := config.Load(e.dir)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	const n = 100_000
	start := time.Now().Add(-n * 10 * time.Millisecond)
	if err := loggen.Postfix(&buf, loggen.Options{Lines: n, AttackShare: 0.05, Attackers: 20000, Seed: 1, Start: start}); err != nil {
		b.Fatal(err)
	}
	g := &generation{cfg: cfg, log: slog.New(slog.DiscardHandler), resumed: map[string]bool{}, started: time.Now()}
	if err := g.build(); err != nil {
		b.Fatal(err)
	}
	jr := g.jails[0]
	var all, benign []source.Line
	for i, text := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		l := source.Line{Path: e.logPath, Text: text, Pos: source.Position{Path: e.logPath, Offset: int64(i)}}
		all = append(all, l)
		if _, ok := jr.filter.Match(text, start); !ok {
			benign = append(benign, l)
		}
	}
	// The filter alone on the benign lines: what handle costs beyond it.
	b.Run("benign-filter-only", func(b *testing.B) {
		ref := time.Now()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			jr.filter.Match(benign[i%len(benign)].Text, ref)
		}
	})
	for _, c := range []struct {
		name  string
		lines []source.Line
	}{{"benign", benign}, {"mixed", all}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			bt := newBatch()
			ref := time.Now()
			const per = 512 // lines per source batch
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				k := i % len(c.lines)
				ls := c.lines[k:min(k+per, len(c.lines), k+b.N-i)]
				g.handle(ctx, ls, bt, ref)
				i += len(ls)
				if bt.lines >= batchLines {
					bt = newBatch()
				}
			}
		})
	}
}
