package source

import (
	"bytes"
	"context"
	"github.com/banwatch/banwatch/internal/benchref"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nxadm/tail"

	"github.com/banwatch/banwatch/bench/loggen"
)

// rateLines is the length of the log BenchmarkIngest reads.
const rateLines = 500_000

// rateLog returns a generated Postfix log of rateLines lines.
func rateLog(b *testing.B) []byte {
	b.Helper()
	var buf bytes.Buffer
	if err := loggen.Postfix(&buf, loggen.Options{Lines: rateLines, AttackShare: 0.05, Attackers: 20000, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// fileRead reads path with a File and returns how long the first n lines
// took.
func fileRead(b *testing.B, path string, n int) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []Line, 16)
	f := NewFile(path, Start{}, nil, FileOptions{})
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx, out) }()
	seen := 0
	for seen < n {
		select {
		case ls := <-out:
			seen += len(ls)
		case err := <-done:
			b.Fatalf("Run returned after %d lines: %v", seen, err)
		}
	}
	took := time.Since(start)
	cancel()
	<-done
	return took
}

// BenchmarkIngest compares how fast bare nxadm/tail and a File read the same
// generated Postfix log of rateLines lines, in the same run, alternating:
// "backlog" reads a file written beforehand, "append" a file that a writer
// appends to (64 KiB writes, as fast as it can) while it is read. Each
// iteration reads the log once with each reader; the metrics are the
// medians of the iterations and their ratio.
//
//	go test -run '^$' -bench Ingest -benchtime 5x ./pkg/source
func BenchmarkIngest(b *testing.B) {
	data := rateLog(b)
	for _, mode := range []string{"backlog", "append"} {
		b.Run(mode, func(b *testing.B) {
			var bare, file, bareCPU, fileCPU []float64
			for i := 0; i < b.N; i++ {
				for k := range 2 {
					b.StopTimer()
					path := filepath.Join(b.TempDir(), "mail.log")
					writeFile(b, path, "")
					if mode == "backlog" {
						writeFile(b, path, string(data))
					}
					b.StartTimer()
					var writer chan struct{}
					if mode == "append" {
						writer = make(chan struct{})
						go func() {
							defer close(writer)
							appendChunks(b, path, data)
						}()
					}
					cpu0 := benchref.CPUTime() // with the writer's: the same for both readers
					if (i+k)%2 == 0 {
						bare = append(bare, rateLines/bareRead(b, path, rateLines))
						bareCPU = append(bareCPU, float64(benchref.CPUTime()-cpu0)/rateLines)
					} else {
						file = append(file, rateLines/fileRead(b, path, rateLines).Seconds())
						fileCPU = append(fileCPU, float64(benchref.CPUTime()-cpu0)/rateLines)
					}
					if writer != nil {
						<-writer
					}
				}
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(benchref.Median(bare), "bare-lines/s")
			b.ReportMetric(benchref.Median(file), "file-lines/s")
			b.ReportMetric(benchref.Median(file)/benchref.Median(bare), "file/bare")
			b.ReportMetric(benchref.Median(bareCPU), "bare-cpu-ns/line")
			b.ReportMetric(benchref.Median(fileCPU), "file-cpu-ns/line")
		})
	}
}

// appendChunks appends data to path in writes of 64 KiB, each ending at a
// line's end.
func appendChunks(b *testing.B, path string, data []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if i := bytes.LastIndexByte(data[:n], '\n'); i >= 0 {
			n = i + 1
		}
		if _, err := f.Write(data[:n]); err != nil {
			b.Error(err)
			return
		}
		data = data[n:]
	}
}

// BenchmarkTake runs lines of a generated Postfix log through a File's
// per-line path (runner.take: offset check, copy, batch, verification once
// per batch, hand-out bookkeeping) without nxadm/tail and channels, one op
// per line. The lines, as nxadm/tail hands them over, are made beforehand:
// their allocations are nxadm/tail's, not the File's.
//
//	go test -run '^$' -bench Take -benchmem ./pkg/source
func BenchmarkTake(b *testing.B) {
	data := rateLog(b)[:8<<20]
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	path := filepath.Join(b.TempDir(), "mail.log")
	writeFile(b, path, string(data))
	var lines []*tail.Line
	for off := 0; off < len(data); {
		i := bytes.IndexByte(data[off:], '\n')
		lines = append(lines, &tail.Line{Text: string(data[off : off+i]), SeekInfo: tail.SeekInfo{Offset: int64(off + i + 1)}})
		off += i + 1
	}
	f := NewFile(path, Start{}, nil, FileOptions{})
	r := newRunner(f)
	defer r.close()
	g, err := openGen(path)
	if err != nil {
		b.Fatal(err)
	}
	r.queue = []*gen{g}
	r.flush = time.AfterFunc(time.Hour, func() {})
	defer r.flush.Stop()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(lines)
		if k == 0 {
			g.off, g.last = 0, nil
		}
		if err := r.take(lines[k]); err != nil {
			b.Fatal(err)
		}
		if n := len(r.pending) - r.unv; n >= verifyLines || k == len(lines)-1 {
			if _, err := r.settle(); err != nil {
				b.Fatal(err)
			}
			n = len(r.pending)
			r.sent(r.pending[:n:n])
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N), "allocs/line")
}

// bareRead is benchref.BareTail's time for n lines of path, in seconds.
func bareRead(b *testing.B, path string, n int) float64 {
	d, err := benchref.BareTail(path, n)
	if err != nil {
		b.Fatal(err)
	}
	return d.Seconds()
}
