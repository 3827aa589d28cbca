package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nxadm/tail"

	"github.com/banwatch/banwatch/pkg/source"
)

// tailReport is what the tailrate mode prints on stdout when done.
type tailReport struct {
	Lines int   `json:"lines"`
	First int64 `json:"first_ns"` // when the first line came (Unix ns)
	Last  int64 `json:"last_ns"`  // when the n-th line came
}

// tailRate is the bare nxadm/tail reader the ingest benchmark compares
// the daemon with: `daemon -tailrate -file F -n N` follows F from its
// start with nxadm/tail's defaults and no reopen, prints "ready", counts
// lines until N and prints a tailReport. With -as-banwatchd it sets what
// banwatchd's source sets too (complete lines only, the longest line, and
// Pipe, which spares a discarded lseek a line: see pkg/source/follow.go).
func tailRate(args []string) int {
	fs := flag.NewFlagSet("tailrate", flag.ContinueOnError)
	file := fs.String("file", "", "the file to follow")
	n := fs.Int("n", 0, "lines to count")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	asDaemon := fs.Bool("as-banwatchd", false, "configure nxadm/tail as banwatchd's source does")
	if err := fs.Parse(args); err != nil || *file == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: daemon -tailrate -file FILE -n LINES")
		return 2
	}
	cfg := tail.Config{Follow: true, ReOpen: false, MustExist: true,
		Location: &tail.SeekInfo{Offset: 0, Whence: io.SeekStart}, Logger: tail.DiscardingLogger}
	if *asDaemon {
		cfg.CompleteLines, cfg.Pipe, cfg.MaxLineSize = true, true, source.DefaultMaxLine+2
	}
	t, err := tail.TailFile(*file, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailrate:", err)
		return 1
	}
	fmt.Println("ready")
	var rep tailReport
	deadline := time.After(*timeout)
	for rep.Lines < *n {
		select {
		case l, ok := <-t.Lines:
			if !ok {
				fmt.Fprintln(os.Stderr, "tailrate: tail stopped:", t.Err())
				return 1
			}
			if l.Err != nil {
				fmt.Fprintln(os.Stderr, "tailrate:", l.Err)
				return 1
			}
			rep.Lines++
			if rep.Lines == 1 {
				rep.First = time.Now().UnixNano()
			}
		case <-deadline:
			fmt.Fprintf(os.Stderr, "tailrate: timeout: %d of %d lines in %v\n", rep.Lines, *n, *timeout)
			return 1
		}
	}
	rep.Last = time.Now().UnixNano()
	json.NewEncoder(os.Stdout).Encode(rep)
	t.Stop()
	return 0
}
