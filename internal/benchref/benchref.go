// Package benchref holds what the performance benchmarks measure banwatch
// against and how they sum up runs: bare nxadm/tail reading a log, the
// process's CPU time, and the median of repeated measurements. It depends on nothing of banwatch's, so
// that any package's benchmarks may use it.
package benchref

import (
	"fmt"
	"io"
	"sort"
	"syscall"
	"time"

	"github.com/nxadm/tail"
)

// BareTail tails path with nxadm/tail as a plain user of the library would
// (Follow, no ReOpen, from the first byte) and returns how long its first n
// lines took to come: the reference the performance benchmarks hold
// banwatch's own reading against.
func BareTail(path string, n int) (time.Duration, error) {
	start := time.Now()
	t, err := tail.TailFile(path, tail.Config{Follow: true, ReOpen: false, MustExist: true,
		Location: &tail.SeekInfo{Offset: 0, Whence: io.SeekStart}, Logger: tail.DiscardingLogger})
	if err != nil {
		return 0, fmt.Errorf("bare tail: %w", err)
	}
	defer t.Stop()
	seen := 0
	for l := range t.Lines {
		if l.Err != nil {
			return 0, fmt.Errorf("bare tail: %w", l.Err)
		}
		if seen++; seen == n {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("bare tail: it ended after %d lines: %v", seen, t.Err())
}

// Median returns the median of v, 0 for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// CPUTime is the CPU time the process used so far (user and system).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
