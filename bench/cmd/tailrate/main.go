// Command tailrate measures how fast a log is read: bare nxadm/tail, as a
// plain user tails a file, and banwatch's source.File on the same file, in
// the same run, alternating. It is the reference for the daemon's ingest
// rate (see BenchmarkIngest in pkg/source and BenchmarkPipeline in
// pkg/daemon).
//
//	go run ./bench/cmd/genlog -lines 2000000 > /tmp/mail.log
//	go run ./bench/cmd/tailrate -n 2000000 -rounds 3 /tmp/mail.log
//
// Each round reads the first n lines of the file from its start (n must not
// exceed the lines in the file, or the reader waits for more) and prints the
// lines per second of each reader; the medians come last.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/banwatch/banwatch/internal/benchref"
	"os"
	"time"

	"github.com/banwatch/banwatch/pkg/source"
)

func main() {
	n := flag.Int("n", 1000000, "lines to read")
	rounds := flag.Int("rounds", 3, "rounds (each reads the file with every reader)")
	mode := flag.String("mode", "both", "bare (nxadm/tail only), source (source.File only) or both")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: tailrate [-n lines] [-rounds r] [-mode bare|source|both] file")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	path := flag.Arg(0)
	var readers []string
	switch *mode {
	case "bare", "source":
		readers = []string{*mode}
	case "both":
		readers = []string{"bare", "source"}
	default:
		flag.Usage()
		os.Exit(2)
	}
	rates := map[string][]float64{}
	for r := range *rounds {
		for i := range readers {
			name := readers[(i+r)%len(readers)] // alternate which goes first
			var took time.Duration
			var err error
			if name == "bare" {
				took, err = benchref.BareTail(path, *n)
			} else {
				took, err = Source(path, *n)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "tailrate:", err)
				os.Exit(1)
			}
			rate := float64(*n) / took.Seconds()
			rates[name] = append(rates[name], rate)
			fmt.Printf("round %d %-6s %9d lines in %8v: %9.0f lines/s\n", r+1, name, *n, took.Round(time.Millisecond), rate)
		}
	}
	for _, name := range readers {
		fmt.Printf("median %-6s %9.0f lines/s\n", name, benchref.Median(rates[name]))
	}
	if len(readers) == 2 {
		fmt.Printf("source/bare %.2f\n", benchref.Median(rates["source"])/benchref.Median(rates["bare"]))
	}
}

// Source reads path with source.File from its start and returns how long
// the first n lines took to come.
func Source(path string, n int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan []source.Line, 64)
	f := source.NewFile(path, source.Start{}, nil, source.FileOptions{})
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx, out) }()
	seen := 0
	for seen < n {
		select {
		case ls := <-out:
			seen += len(ls)
		case err := <-done:
			return 0, fmt.Errorf("source: stopped after %d lines: %v", seen, err)
		}
	}
	took := time.Since(start)
	cancel()
	<-done
	return took, nil
}
