package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/banwatch/banwatch/bench/loggen"
	"github.com/banwatch/banwatch/internal/benchref"
)

// chunkSize is the size of the writes that append the ingest log.
const chunkSize = 1 << 20

// chunk is one write of a log: whole lines.
type chunk struct {
	data  []byte
	lines int64 // lines written once this chunk is
}

// chunks cuts data into writes of about chunkSize bytes at line ends.
func chunks(data []byte) []chunk {
	var out []chunk
	var lines int64
	for len(data) > 0 {
		n := min(chunkSize, len(data))
		if i := bytes.LastIndexByte(data[:n], '\n'); i >= 0 && n < len(data) {
			n = i + 1
		}
		lines += int64(bytes.Count(data[:n], []byte{'\n'}))
		out = append(out, chunk{data: data[:n], lines: lines})
		data = data[n:]
	}
	return out
}

// appendChunks appends the chunks to path as fast as it can, one write
// each, publishing the lines written so far in written. It returns when
// the last write returned.
func appendChunks(path string, cs []chunk, written *atomic.Int64) (time.Time, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	for _, c := range cs {
		if _, err := f.Write(c.data); err != nil {
			return time.Time{}, err
		}
		written.Store(c.lines)
	}
	return time.Now(), nil
}

// ingestRun is what one daemon run measured.
type ingestRun struct {
	rate       float64 // lines/s counted, between the first and last poll inside the run
	maxLag     int64
	lagAtWrite int64   // lag at the first poll after the writer finished
	writeRate  float64 // the writer's lines/s
	writeTook  time.Duration
	drain      time.Duration   // from the writer's end until the daemon counted all
	grewAt     []time.Duration // polls (since the start) at which the lag was higher than at the one before
	timeline   []int64         // the lag at the first poll of each second
	bans       int64
	polls      int
	stored     time.Duration // from the last line counted until the store held them all
	lines      int64
	cpu        time.Duration // the daemon's CPU time (user and system) from the start to the last line counted
	storeCPU   time.Duration // the part of cpu spent on the store writer's thread
	busy       time.Duration // wall time from the start to the last line counted
}

func benchIngest(ctx context.Context, o *opts) []result {
	n := o.ingestLines
	progress("ingest: generating %s Postfix lines", commas(int64(n)))
	var buf bytes.Buffer
	// The times start just before now, so that the daemon takes the events
	// as live (a first-read log's events older than find_time are history)
	// and spread over hours ahead, which logtime accepts within its slack.
	err := loggen.Postfix(&buf, loggen.Options{Lines: n, AttackShare: 0.05, Attackers: 100000, Seed: 1,
		Start: time.Now().Add(-30 * time.Second)})
	if err != nil {
		return []result{failed("generating the log", err)}
	}
	cs := chunks(buf.Bytes())
	var rs []result
	for _, pin := range []bool{true, false} {
		label := "1 CPU (taskset -c 0)"
		if !pin {
			label = "unpinned"
		}
		rounds, err := runIngestRounds(ctx, cs, n, pin, o.ingestRounds)
		if ctx.Err() != nil {
			return rs
		}
		if err != nil {
			rs = append(rs, failed(label, err))
			continue
		}
		d, tr, ta, ratio := rounds.medians()
		rs = append(rs, result{Measure: label + ", banwatchd lines/s", Value: d.rate, Unit: "lines/s",
			Result: commas(int64(d.rate)) + " lines/s", Status: statusInfo,
			Notes: fmt.Sprintf("median of %d rounds (%s lines/s); its run: %s", len(rounds), rounds.list(func(r ingestRound) float64 { return r.daemon.rate }), d.notes())})
		rs = append(rs, result{Measure: label + ", bare nxadm/tail lines/s", Value: tr, Unit: "lines/s",
			Result: commas(int64(tr)) + " lines/s", Status: statusInfo,
			Notes: fmt.Sprintf("median of %d rounds (%s lines/s); tail.TailFile, Follow, no ReOpen, from offset 0, separate process",
				len(rounds), rounds.list(func(r ingestRound) float64 { return r.tail }))})
		rs = append(rs, result{Measure: label + ", bare nxadm/tail as banwatchd configures it, lines/s", Value: ta, Unit: "lines/s",
			Result: commas(int64(ta)) + " lines/s", Status: statusInfo,
			Notes: fmt.Sprintf("median of %d rounds (%s lines/s); the same with CompleteLines, MaxLineSize and Pipe, as pkg/source sets them",
				len(rounds), rounds.list(func(r ingestRound) float64 { return r.tailAs }))})
		tf := benchref.Median(rounds.each(func(r ingestRound) float64 { return r.tailFilter }))
		rs = append(rs, result{Measure: label + ", that and the postfix filter, lines/s", Value: tf, Unit: "lines/s",
			Result: commas(int64(tf)) + " lines/s", Status: statusInfo,
			Notes: fmt.Sprintf("median of %d rounds (%s lines/s): %.0f%% of the bare tail as banwatchd configures it, the most the daemon could reach before its jail, store and hand-overs; the reading goroutine matches each line against the shipped postfix filter, as banctl test does",
				len(rounds), rounds.list(func(r ingestRound) float64 { return r.tailFilter }), 100*tf/ta)})
		var each []string
		for _, r := range rounds {
			each = append(each, fmt.Sprintf("%.0f%% (%.0f%% of the defaults, %.0f%% of banwatchd's settings)", r.ratio(), r.daemon.rate/r.tail*100, r.daemon.rate/r.tailAs*100))
		}
		rs = append(rs, result{Measure: label + ", banwatchd / nxadm/tail", Value: ratio, Unit: "%",
			Result: fmt.Sprintf("%.0f%%", ratio), Target: "≥ 80%", Status: judge(ratio >= 80),
			Notes: "median of the rounds' ratios, each of a daemon run and two bare tail runs (nxadm/tail's defaults, and set as banwatchd sets it) one after the other, against the faster of the two: " + strings.Join(each, ", ")})
	}
	return rs
}

// An ingestRound is a daemon run and three bare tail runs on the same
// log, one right after the other: nxadm/tail with its defaults (tail), set
// as banwatchd's source sets it (tailAs), and that with the shipped
// postfix filter matching each line in the reading goroutine (tailFilter,
// not judged: it shows what the jail, the store and the hand-overs have
// left).
type ingestRound struct {
	daemon                   *ingestRun
	tail, tailAs, tailFilter float64 // lines/s
}

// ratio is the daemon's rate against the faster bare tail, in percent.
func (r ingestRound) ratio() float64 { return r.daemon.rate / max(r.tail, r.tailAs) * 100 }

// runIngestRounds runs rounds rounds, the daemon first in odd ones and
// last in even ones, so that a machine that speeds up or slows down during
// the rounds favours neither.
func runIngestRounds(ctx context.Context, cs []chunk, n int, pin bool, rounds int) (ingestRounds, error) {
	var out ingestRounds
	for i := range max(rounds, 1) {
		var r ingestRound
		var derr, terr, aerr, ferr error
		runDaemon := func() { r.daemon, derr = ingestDaemon(ctx, cs, int64(n), pin) }
		runTail := func() { r.tail, terr = ingestTail(ctx, cs, n, pin) }
		runTailAs := func() { r.tailAs, aerr = ingestTail(ctx, cs, n, pin, "-as-banwatchd") }
		runTailFilter := func() { r.tailFilter, ferr = ingestTail(ctx, cs, n, pin, "-filter", "postfix") }
		if i%2 == 0 {
			runDaemon()
			runTail()
			runTailAs()
			runTailFilter()
		} else {
			runTailFilter()
			runTailAs()
			runTail()
			runDaemon()
		}
		if derr != nil {
			return nil, fmt.Errorf("banwatchd, round %d: %w", i+1, derr)
		}
		if terr != nil {
			return nil, fmt.Errorf("nxadm/tail, round %d: %w", i+1, terr)
		}
		if aerr != nil {
			return nil, fmt.Errorf("nxadm/tail as banwatchd sets it, round %d: %w", i+1, aerr)
		}
		if ferr != nil {
			return nil, fmt.Errorf("nxadm/tail with the postfix filter, round %d: %w", i+1, ferr)
		}
		progress("ingest: round %d: banwatchd %s lines/s, bare tail %s lines/s, as banwatchd sets it %s lines/s, with the filter %s lines/s: %.0f%%", i+1,
			commas(int64(r.daemon.rate)), commas(int64(r.tail)), commas(int64(r.tailAs)), commas(int64(r.tailFilter)), r.ratio())
		out = append(out, r)
	}
	return out, nil
}

// ingestRounds are the rounds of one setting (pinned or not).
type ingestRounds []ingestRound

// medians returns the daemon's run of median rate, the median rates of
// the two bare tails and the median of the rounds' ratios (the measure
// judged: each ratio compares runs taken moments apart).
func (rs ingestRounds) medians() (d *ingestRun, tail, tailAs, ratio float64) {
	byRate := slices.Clone(rs)
	slices.SortFunc(byRate, func(a, b ingestRound) int { return cmp.Compare(a.daemon.rate, b.daemon.rate) })
	median := func(f func(ingestRound) float64) float64 { return benchref.Median(rs.each(f)) }
	return byRate[len(byRate)/2].daemon, median(func(r ingestRound) float64 { return r.tail }),
		median(func(r ingestRound) float64 { return r.tailAs }), median(ingestRound.ratio)
}

// each returns f of every round, in order.
func (rs ingestRounds) each(f func(ingestRound) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// list prints f of every round, in order.
func (rs ingestRounds) list(f func(ingestRound) float64) string {
	var out []string
	for _, v := range rs.each(f) {
		out = append(out, commas(int64(v)))
	}
	return strings.Join(out, ", ")
}

// notes describes the lag of a run.
func (r *ingestRun) notes() string {
	var tl []string
	for _, l := range r.timeline {
		tl = append(tl, fmt.Sprintf("%dk", (l+500)/1000))
	}
	grew := "the lag grew at no poll"
	if len(r.grewAt) > 0 {
		var at []string
		for _, d := range r.grewAt {
			at = append(at, fmt.Sprintf("%.1f", d.Seconds()))
		}
		grew = "the lag grew at the polls at " + strings.Join(at, ", ") + " s"
	}
	return fmt.Sprintf("the writer appended all in %.2f s (%s lines/s); lag at its end %s, max %s lines; lag each second: %s; %s; all counted %.1f s after the writer's end; %s bans; %d polls; the store held every line's strikes and position %.1f s after the last was counted",
		r.writeTook.Seconds(), commas(int64(r.writeRate)), commas(r.lagAtWrite), commas(r.maxLag), strings.Join(tl, " "),
		grew, r.drain.Seconds(), commas(r.bans), r.polls, r.stored.Seconds()) +
		fmt.Sprintf("; the daemon used %.2f µs of CPU a line (%.2f µs of them on the store writer's thread), %.0f%% of a core from the start until all were counted",
			float64(r.cpu.Nanoseconds())/1000/float64(r.lines), float64(r.storeCPU.Nanoseconds())/1000/float64(r.lines),
			100*r.cpu.Seconds()/r.busy.Seconds())
}

// pinHarness moves this process to CPU 1 (and banctl with it) while the
// measured process has CPU 0; the returned function undoes that.
func pinHarness(pin bool) func() {
	if !pin || runtime.NumCPU() < 2 {
		return func() {}
	}
	pinCtl = true
	setAffinity([]int{1})
	return func() {
		pinCtl = false
		setAffinity(nil)
	}
}

// ingestDaemon appends the log while banwatchd with the shipped postfix
// jail follows it, polling its line count.
func ingestDaemon(ctx context.Context, cs []chunk, n int64, pin bool) (*ingestRun, error) {
	e, err := newEnv(ctx, "ingest", "[postfix]\nenabled = true\nlogs = [%LOG%]\n")
	if err != nil {
		return nil, err
	}
	defer e.close()
	defer pinHarness(pin)()
	d, err := e.start(ctx, pin, 20*time.Second)
	if err != nil {
		return nil, err
	}
	type sample struct {
		t       time.Time
		written int64
		counted int64
	}
	var written atomic.Int64
	var writeEnd atomic.Pointer[time.Time]
	writeErr := make(chan error, 1)
	cpu0, err := cpuTime(d.pid())
	if err != nil {
		return nil, err
	}
	store0, err := niceThreadsCPU(d.pid(), 10)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	go func() {
		t, err := appendChunks(e.logPath, cs, &written)
		writeEnd.Store(&t)
		writeErr <- err
	}()
	timeout := 60*time.Second + time.Duration(n/20000)*time.Second
	var samples []sample
	var last jailStatus
	tick := time.NewTicker(100 * time.Millisecond) // or as fast as banctl answers, if slower
	defer tick.Stop()
	for {
		st, err := e.status(ctx)
		w := written.Load() // after the daemon's counter was read: the lag is not understated
		if err != nil {
			if derr := d.alive(); derr != nil {
				return nil, derr
			}
			return nil, err
		}
		j, err := st.jail("postfix")
		if err != nil {
			return nil, err
		}
		last = j
		samples = append(samples, sample{time.Now(), w, j.Lines})
		if j.Lines >= n {
			break
		}
		if time.Since(start) > timeout {
			return nil, fmt.Errorf("timeout: the daemon counted %d of %d lines in %v", j.Lines, n, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	if err := <-writeErr; err != nil {
		return nil, err
	}
	counted := time.Now()
	cpu1, err := cpuTime(d.pid())
	if err != nil {
		return nil, err
	}
	store1, err := niceThreadsCPU(d.pid(), 10)
	if err != nil {
		return nil, err
	}
	// The store commits behind the kernel, at a lower priority: how long
	// after the last line was counted it held them all.
	if err := e.waitCommitted(ctx, 5*time.Minute, d.alive); err != nil {
		return nil, err
	}
	stored := time.Since(counted)
	we := *writeEnd.Load()
	r := &ingestRun{bans: last.Bans, polls: len(samples), writeTook: we.Sub(start), stored: stored,
		lines: n, cpu: cpu1 - cpu0, storeCPU: store1 - store0, busy: counted.Sub(start)}
	r.writeRate = float64(n) / r.writeTook.Seconds()
	end := samples[len(samples)-1].t
	r.drain = end.Sub(we)
	// The rate between the first and the last poll that saw the daemon
	// busy (some lines counted, not all): both ends are instants inside
	// the run, so the poll interval biases neither.
	var first, lastBusy *sample
	atWrite := false
	nextMark := start
	for i := range samples {
		s := &samples[i]
		lag := s.written - s.counted
		r.maxLag = max(r.maxLag, lag)
		if i > 0 && lag > samples[i-1].written-samples[i-1].counted {
			r.grewAt = append(r.grewAt, s.t.Sub(start))
		}
		if !atWrite && !s.t.Before(we) {
			r.lagAtWrite, atWrite = lag, true
		}
		if !s.t.Before(nextMark) {
			r.timeline = append(r.timeline, lag)
			nextMark = nextMark.Add(time.Second)
		}
		if s.counted > 0 && s.counted < n {
			if first == nil {
				first = s
			}
			lastBusy = s
		}
	}
	if first != nil && lastBusy != first {
		r.rate = float64(lastBusy.counted-first.counted) / lastBusy.t.Sub(first.t).Seconds()
	} else {
		// Done within about two polls: from the start of writing to the end.
		r.rate = float64(n) / end.Sub(start).Seconds()
	}
	return r, nil
}

// ingestTail appends the log the same way while a separate process
// follows it with bare nxadm/tail (tailRate, with the extra arguments
// given), and returns that process's lines/s.
func ingestTail(ctx context.Context, cs []chunk, n int, pin bool, extra ...string) (float64, error) {
	path := filepath.Join(workDir, fmt.Sprintf("tail-%d.log", nextSeq()))
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer pinHarness(pin)()
	var prefix []string
	if pin {
		prefix = []string{"taskset", "-c", "0"}
	}
	h, err := startHelper(ctx, prefix, "tailrate", append([]string{"-file", path, "-n", fmt.Sprint(n), "-timeout", "2m"}, extra...)...)
	if err != nil {
		return 0, err
	}
	defer h.stop()
	var written atomic.Int64
	if _, err := appendChunks(path, cs, &written); err != nil {
		return 0, err
	}
	l, err := h.result(ctx, 150*time.Second)
	if err != nil {
		return 0, err
	}
	var rep tailReport
	if err := json.Unmarshal([]byte(l), &rep); err != nil {
		return 0, fmt.Errorf("tailrate said %q: %v", l, err)
	}
	<-h.exited
	if rep.Lines != n || rep.Last <= rep.First {
		return 0, fmt.Errorf("tailrate: bad report %+v", rep)
	}
	if slices.Contains(extra, "-filter") && rep.Events == 0 {
		return 0, fmt.Errorf("tailrate: the filter found no event in %d lines", n)
	}
	return float64(n-1) / (float64(rep.Last-rep.First) / 1e9), nil
}
