package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"github.com/nxadm/tail"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/source"
)

// tailReport is what the tailrate mode prints on stdout when done.
type tailReport struct {
	Lines int   `json:"lines"`
	First int64 `json:"first_ns"` // when the first line came (Unix ns)
	Last  int64 `json:"last_ns"`  // when the n-th line came
	// Events counts the filter's events (with -filter).
	Events int `json:"events,omitempty"`
}

// tailRate is the bare nxadm/tail reader the ingest benchmark compares
// the daemon with: `daemon -tailrate -file F -n N` follows F from its
// start with nxadm/tail's defaults and no reopen, prints "ready", counts
// lines until N and prints a tailReport. With -as-banwatchd it sets what
// banwatchd's source sets too (complete lines only, the longest line, and
// Pipe, which spares a discarded lseek a line: see pkg/source/follow.go).
// With -filter NAME (which implies -as-banwatchd) it also matches each
// line against that shipped filter in the reading goroutine, as banctl
// test does: what nxadm/tail and the filter alone leave, without the
// daemon's jail, store and hand-overs.
func tailRate(args []string) int {
	fs := flag.NewFlagSet("tailrate", flag.ContinueOnError)
	file := fs.String("file", "", "the file to follow")
	n := fs.Int("n", 0, "lines to count")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	asDaemon := fs.Bool("as-banwatchd", false, "configure nxadm/tail as banwatchd's source does")
	filterName := fs.String("filter", "", "match each line against this shipped filter (implies -as-banwatchd)")
	if err := fs.Parse(args); err != nil || *file == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: daemon -tailrate -file FILE -n LINES [-as-banwatchd] [-filter NAME]")
		return 2
	}
	var m *filter.Matcher
	if *filterName != "" {
		*asDaemon = true
		f, err := config.FindFilter("", *filterName)
		if err == nil {
			var set *filter.Set
			if set, err = filter.NewSet(f); err == nil {
				m = set.NewMatcher()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "tailrate:", err)
			return 1
		}
	}
	var evs []event.Event
	ref := time.Now()
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
			if err := lineErr(t, l, ok); err != nil {
				fmt.Fprintln(os.Stderr, "tailrate:", err)
				return 1
			}
			if m != nil {
				// Not copied, as pkg/source does not (see its textOf).
				evs = m.Match(unsafe.Slice(unsafe.StringData(l.Text), len(l.Text)), ref, evs[:0])
				rep.Events += len(evs)
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

// lineErr is what a receive from t.Lines brought that ends a helper: the
// tail stopped (ok false), or the line's own error.
func lineErr(t *tail.Tail, l *tail.Line, ok bool) error {
	if !ok {
		return fmt.Errorf("tail stopped: %v", t.Err())
	}
	return l.Err
}
