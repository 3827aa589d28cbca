package main

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func benchRestore(ctx context.Context, o *opts) []result {
	n := o.restoreN
	took, notes, err := restore(ctx, n)
	if err != nil {
		return []result{failed("restore of "+commas(int64(n))+" bans", err)}
	}
	return []result{{Measure: "restore of " + commas(int64(n)) + " bans", Value: took.Seconds(), Unit: "s",
		Result: fmt.Sprintf("%.2f s", took.Seconds()), Target: "≤ 10 s", Status: judge(took <= 10*time.Second), Notes: notes}}
}

// restore fills the store with n active bans, starts the daemon and
// returns the time from the process start until the kernel held all n.
func restore(ctx context.Context, n int) (time.Duration, string, error) {
	e, err := newEnv(ctx, "restore", "[postfix]\nenabled = true\nlogs = [%LOG%]\n")
	if err != nil {
		return 0, "", err
	}
	defer e.close()
	fs, err := fillstore(ctx)
	if err != nil {
		return 0, "", err
	}
	progress("restore: fillstore -n %s", commas(int64(n)))
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t := time.Now()
	out, err := exec.CommandContext(fctx, fs, "-db", filepath.Join(e.state, "banwatch.db"), "-n", fmt.Sprint(n), "-jail", "postfix").CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("fillstore: %v: %s", err, strings.TrimSpace(string(out)))
	}
	fill := time.Since(t)
	if err := e.watch(); err != nil {
		return 0, "", err
	}
	d, err := e.start(ctx, false, 0)
	if err != nil {
		return 0, "", err
	}
	// fillstore's addresses: 10.0.0.0, 10.0.0.1, ...
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	end, how, err := waitKernel(ctx, e, d, "postfix", n, sample(n, 1000, addr), d.started, 90*time.Second)
	if err != nil {
		return 0, "", err
	}
	took := end.Sub(d.started)
	if err := d.waitLog(ctx, `msg="banwatchd running"`, 60*time.Second); err != nil {
		return 0, "", err
	}
	ready, readyOK := logTime(d.logLine(`msg="banwatchd running"`))
	notes := fmt.Sprintf("process start to the last element in the kernel, %s; fillstore took %.1f s", how, fill.Seconds())
	if l := d.logLine(`msg="bans restored"`); l != "" {
		if i := strings.Index(l, "took="); i >= 0 {
			notes += "; daemon logs bans restored " + strings.Fields(l[i:])[0]
		}
	}
	if readyOK {
		notes += fmt.Sprintf("; daemon logs \"banwatchd running\" %.2f s after the start", ready.Sub(d.started).Seconds())
	}
	return took, notes, nil
}

// logTime returns the time= of a daemon log line.
func logTime(line string) (time.Time, bool) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "time="); ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			return t, err == nil
		}
	}
	return time.Time{}, false
}
