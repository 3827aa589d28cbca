package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/offline"
)

// cmdTest is `banctl test`.
func cmdTest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banctl test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	filterName := fs.String("filter", "", "filter `NAME` or PATH to a filter file (default: every filter)")
	dir := fs.String("config", config.DefaultDir, "configuration `DIR` whose filters/ add to and override the shipped ones")
	asJSON := fs.Bool("json", false, "print one JSON object per match (JSON Lines), then a summary object")
	top := fs.Int("top", 10, "show the `N` addresses with the most events")
	jailName := fs.String("jail", "", "replay the log through jail `NAME` (its filter, window, fingerprints, subnets...) and report the bans it would make")
	noProgress := fs.Bool("no-progress", false, "draw no progress bar (drawn on standard error when it is a terminal, without --json)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: banctl test [--filter NAME|PATH | --jail NAME] [--config DIR] [--json] [--top N] [--no-progress] FILE...")
		fmt.Fprintln(stderr, "Runs filters over log files (\"-\" for standard input) without the daemon; with --jail, also")
		fmt.Fprintln(stderr, "the jail, with the log's own timestamps, and reports the bans it would make.")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}

	var filters []*filter.Filter
	var replay *jailReplay
	if *jailName != "" {
		if *filterName != "" {
			fmt.Fprintln(stderr, "banctl test: --jail uses the jail's filter; leave out --filter")
			return 2
		}
		cfg, err := config.Load(*dir)
		if err != nil {
			fmt.Fprintln(stderr, "banctl test:", err)
			return 2
		}
		jc := cfg.Jail(*jailName)
		if jc == nil {
			fmt.Fprintf(stderr, "banctl test: no jail %q in %s\n", *jailName, *dir)
			return 2
		}
		filters = []*filter.Filter{cfg.Filters[jc.Filter]}
		replay = newJailReplay(jc, append(append([]netip.Prefix(nil), cfg.Daemon.Ignore...), jc.Ignore...))
	} else if *filterName != "" {
		f, err := config.FindFilter(*dir, *filterName)
		if err != nil {
			fmt.Fprintln(stderr, "banctl test:", err)
			return 2
		}
		filters = []*filter.Filter{f}
	} else {
		filters, err = config.LoadFilters(*dir)
		if err != nil {
			fmt.Fprintln(stderr, "banctl test:", err)
			return 2
		}
	}
	set, err := filter.NewSet(filters...)
	if err != nil {
		fmt.Fprintln(stderr, "banctl test:", err)
		return 2
	}

	inputs, total, closeAll, err := openInputs(files, stdin)
	defer closeAll()
	if err != nil {
		fmt.Fprintln(stderr, "banctl test:", err)
		return 2
	}

	out := bufio.NewWriterSize(stdout, 64*1024)
	defer out.Flush()
	var onMatch func(*offline.Match)
	var buf []byte
	if *asJSON {
		onMatch = func(m *offline.Match) {
			buf = offline.AppendJSON(buf[:0], m)
			buf = append(buf, '\n')
			out.Write(buf)
		}
	}
	if replay != nil {
		print := onMatch
		onMatch = func(m *offline.Match) {
			if print != nil {
				print(m)
			}
			for _, d := range replay.observe(&m.Event) {
				if *asJSON {
					buf = replay.appendJSON(buf[:0], &d)
					buf = append(buf, '\n')
					out.Write(buf)
				}
			}
		}
	}
	var prog *offline.Progress
	stopProgress := func() {}
	if fd, ok := terminalFd(stderr); ok && !*asJSON && !*noProgress {
		prog = new(offline.Progress)
		stopProgress = startProgress(stderr, func() int { return termWidth(fd) }, prog, total)
	}
	rep, err := offline.RunWithProgress(ctx, set, inputs, onMatch, prog)
	stopProgress()
	if err != nil {
		out.Flush()
		fmt.Fprintln(stderr, "banctl test:", err)
		return 2
	}
	if *asJSON {
		writeJSONSummary(out, rep, replay)
	} else {
		writeSummary(out, rep, set.Filters(), *top)
		if replay != nil {
			replay.writeSummary(out, *top)
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(stderr, "banctl test:", err)
		return 1
	}
	return 0
}

// parseInterspersed parses flags that may stand before, between or after
// the file arguments, as admins type them. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// openInputs opens every file before any is read, so that a typo fails at
// once. A file's reference time (see offline.Input) is the day its name
// carries (IceWarp's YYYYMMDD logs), else its modification time. total is
// the bytes left to read in all inputs together, -1 when one of them is
// not a regular file (a pipe, a terminal), whose length is not known.
func openInputs(names []string, stdin io.Reader) (inputs []offline.Input, total int64, closeAll func(), err error) {
	var opened []*os.File
	closeAll = func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for _, name := range names {
		if name == "-" {
			inputs = append(inputs, offline.Input{Name: "-", R: stdin, Ref: time.Now()})
			total = addSize(total, stdin)
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, closeAll, err
		}
		opened = append(opened, f)
		st, err := f.Stat()
		if err != nil {
			return nil, 0, closeAll, err
		}
		if st.IsDir() {
			return nil, 0, closeAll, fmt.Errorf("%s: is a directory", name)
		}
		total = addSize(total, f)
		ref := st.ModTime()
		if t, ok := offline.RefFromName(name, time.Local); ok {
			ref = t
		}
		inputs = append(inputs, offline.Input{Name: name, R: f, Ref: ref})
	}
	return inputs, total, closeAll, nil
}

// addSize adds to total (-1: unknown) the bytes left in r from its current
// offset if r is a regular file, and returns -1 if it is anything else.
func addSize(total int64, r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok || total < 0 {
		return -1
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	return total + max(st.Size()-off, 0)
}

func writeSummary(w io.Writer, rep *offline.Report, filters []string, top int) {
	secs := rep.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(rep.Lines) / secs
	}
	fmt.Fprintf(w, "filters:   %s\n", strings.Join(filters, ", "))
	fmt.Fprintf(w, "read:      %d lines in %d file(s), %.3fs, %.0f lines/s\n", rep.Lines, rep.Files, secs, rate)
	fmt.Fprintf(w, "matched:   %d lines, %d events from %d addresses\n", rep.Matched, rep.Events, rep.Addresses())
	fmt.Fprintf(w, "no time:   %d events whose line had no parsable timestamp\n", rep.Unparsable)
	if rep.Skipped > 0 {
		fmt.Fprintf(w, "skipped:   %d lines longer than %d bytes\n", rep.Skipped, offline.MaxLine)
	}
	if len(rep.ByEvent) > 0 {
		fmt.Fprintln(w, "\nevents:")
		for _, k := range sortedKeys(rep.ByEvent) {
			fmt.Fprintf(w, "  %-16s %d\n", k, rep.ByEvent[k])
		}
	}
	if len(filters) > 1 && len(rep.ByFilter) > 0 {
		fmt.Fprintln(w, "\nby filter:")
		for _, k := range sortedKeys(rep.ByFilter) {
			fmt.Fprintf(w, "  %-16s %d\n", k, rep.ByFilter[k])
		}
	}
	if tops := rep.TopAddrs(top); len(tops) > 0 {
		fmt.Fprintf(w, "\ntop addresses:\n")
		for _, a := range tops {
			var parts []string
			byEvent := a.ByEvent()
			for _, k := range sortedKeys(byEvent) {
				parts = append(parts, fmt.Sprintf("%s=%d", k, byEvent[k]))
			}
			fmt.Fprintf(w, "  %-39s %8d  %s\n", a.Addr, a.Events, strings.Join(parts, " "))
		}
	}
}

func writeJSONSummary(w io.Writer, rep *offline.Report, replay *jailReplay) {
	b := []byte(`{"type":"summary","files":`)
	b = strconv.AppendInt(b, int64(rep.Files), 10)
	b = append(b, `,"lines":`...)
	b = strconv.AppendInt(b, int64(rep.Lines), 10)
	b = append(b, `,"skipped":`...)
	b = strconv.AppendInt(b, int64(rep.Skipped), 10)
	b = append(b, `,"matched":`...)
	b = strconv.AppendInt(b, int64(rep.Matched), 10)
	b = append(b, `,"unparsable_time":`...)
	b = strconv.AppendInt(b, int64(rep.Unparsable), 10)
	b = append(b, `,"addresses":`...)
	b = strconv.AppendInt(b, int64(rep.Addresses()), 10)
	b = append(b, `,"events":{`...)
	for i, k := range sortedKeys(rep.ByEvent) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, string(k))
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(rep.ByEvent[k]), 10)
	}
	b = append(b, `},"seconds":`...)
	b = strconv.AppendFloat(b, rep.Elapsed.Seconds(), 'f', 3, 64)
	if replay != nil {
		b = replay.appendSummary(b)
	}
	b = append(b, "}\n"...)
	w.Write(b)
}

// sortedKeys returns a map's keys sorted.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
