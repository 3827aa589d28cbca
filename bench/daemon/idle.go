package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// idleJails turns every shipped jail on, on quiet logs of its own (dovecot
// shares Postfix's mail.log, as on Debian).
const idleJails = `[postfix]
enabled = true
logs = [%LOG%]
[dovecot]
enabled = true
logs = [%LOG%]
[exim]
enabled = true
logs = ["%DIR%/exim/mainlog"]
[icewarp]
enabled = true
logs = ["%DIR%/icewarp/s*.log"]
[sshd]
enabled = true
logs = ["%DIR%/auth.log"]
`

func benchIdle(ctx context.Context, o *opts) []result {
	r, err := idle(ctx, o.idle)
	if err != nil {
		return []result{failed("idle CPU", err)}
	}
	how := fmt.Sprintf("the run time the kernel counts for each of its threads (/proc/PID/task/*/schedstat, in ns) over %v; utime+stime, which counts whole 10 ms ticks, gave %.3f%%",
		o.idle, r.ticks)
	if r.lost > 0 {
		how = fmt.Sprintf("utime+stime over %v (resolution 10 ms of CPU): %d of the daemon's threads ended meanwhile, so their run time could not be summed", o.idle, r.lost)
	}
	return []result{
		{Measure: "idle CPU", Value: r.pct, Unit: "% of a core", Result: fmt.Sprintf("%.3f%% of a core", r.pct), Target: "≤ 0.1% of a core", Status: judge(r.pct <= 0.1),
			Notes: how + ", all 5 shipped jails on quiet logs"},
		{Measure: "idle RSS", Value: float64(r.rss), Unit: "bytes", Result: fmt.Sprintf("%.1f MiB", mib(r.rss)), Status: statusInfo},
	}
}

// idleRun is what idle measured: the CPU used as a percentage of one
// core (pct: from the threads' run times, or from ticks when lost threads
// ended meanwhile), the same from utime+stime (ticks), and the RSS at the
// end.
type idleRun struct {
	pct, ticks float64
	lost       int
	rss        int64
}

// idle measures the daemon's CPU use over d, and its RSS at the end.
func idle(ctx context.Context, d time.Duration) (idleRun, error) {
	e, err := newEnv(ctx, "idle", idleJails)
	if err != nil {
		return idleRun{}, err
	}
	defer e.close()
	for _, f := range []string{"exim/mainlog", "icewarp/s20261128.log", "auth.log"} {
		p := filepath.Join(e.dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return idleRun{}, err
		}
	}
	dm, err := e.start(ctx, false, 20*time.Second)
	if err != nil {
		return idleRun{}, err
	}
	st, err := e.status(ctx)
	if err != nil {
		return idleRun{}, err
	}
	for _, j := range shippedJails {
		if _, err := st.jail(j); err != nil {
			return idleRun{}, err
		}
	}
	time.Sleep(2 * time.Second) // start-up work done
	pid := dm.pid()
	if c := comm(pid); c != "banwatchd" {
		return idleRun{}, fmt.Errorf("process %d is %q, not banwatchd", pid, c)
	}
	c0, err := cpuTime(pid)
	if err != nil {
		return idleRun{}, err
	}
	r0, err := threadRunTimes(pid)
	if err != nil {
		return idleRun{}, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return idleRun{}, ctx.Err()
	case <-dm.done:
		return idleRun{}, dm.alive()
	case <-time.After(d):
	}
	r1, err := threadRunTimes(pid)
	if err != nil {
		return idleRun{}, err
	}
	c1, err := cpuTime(pid)
	if err != nil {
		return idleRun{}, err
	}
	el := time.Since(t0)
	var r idleRun
	if r.rss, err = rss(pid); err != nil {
		return idleRun{}, err
	}
	r.ticks = float64(c1-c0) / float64(el) * 100
	var ran time.Duration
	for tid, t := range r1 {
		ran += t - r0[tid] // a thread started meanwhile counts from 0
	}
	for tid := range r0 {
		if _, ok := r1[tid]; !ok {
			r.lost++
		}
	}
	r.pct = float64(ran) / float64(el) * 100
	if r.lost > 0 {
		r.pct = r.ticks
	}
	return r, nil
}

// threadRunTimes returns the time each thread of pid has run on a CPU, as
// the scheduler counts it to the nanosecond (the first field of
// /proc/PID/task/TID/schedstat), by thread ID. utime and stime in
// /proc/PID/stat count whole clock ticks (10 ms) to the thread that runs
// when a tick comes, too coarse for a process that runs a few dozen
// milliseconds a minute.
func threadRunTimes(pid int) (map[int]time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[int]time.Duration, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // the thread ended since the listing
			}
			return nil, err
		}
		f := strings.Fields(string(data))
		if len(f) < 1 {
			return nil, fmt.Errorf("%s/%s/schedstat: empty", dir, e.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/%s/schedstat: %w", dir, e.Name(), err)
		}
		out[tid] = time.Duration(ns)
	}
	return out, nil
}
