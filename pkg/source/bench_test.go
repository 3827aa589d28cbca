package source

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFollowLatency measures the time from a write to a followed log
// until its line is handed out, with inotify and with polling.
//
//	go test -run '^$' -bench FollowLatency -benchtime 20x ./pkg/source
func BenchmarkFollowLatency(b *testing.B) {
	for _, poll := range []bool{false, true} {
		b.Run(fmt.Sprintf("poll=%v", poll), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "mail.log")
			writeFile(b, path, "")
			r := startFile(b, path, Start{}, FileOptions{Poll: poll})
			time.Sleep(200 * time.Millisecond)
			var worst, sum time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				appendTo(b, path, fmt.Sprintf("line %d\n", i))
				r.next(10 * time.Second)
				d := time.Since(t0)
				sum += d
				worst = max(worst, d)
			}
			b.ReportMetric(float64(sum.Microseconds())/float64(b.N), "µs/line-mean")
			b.ReportMetric(float64(worst.Microseconds()), "µs-worst")
		})
	}
}
