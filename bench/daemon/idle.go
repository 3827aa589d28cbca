package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	pct, mem, err := idle(ctx, o.idle)
	if err != nil {
		return []result{failed("idle CPU", err)}
	}
	return []result{
		{Measure: "idle CPU", Value: pct, Unit: "% of a core", Result: fmt.Sprintf("%.3f%% of a core", pct), Target: "≤ 0.1% of a core", Status: judge(pct <= 0.1),
			Notes: fmt.Sprintf("utime+stime over %v, all 5 shipped jails on quiet logs (resolution 10 ms of CPU)", o.idle)},
		{Measure: "idle RSS", Value: float64(mem), Unit: "bytes", Result: fmt.Sprintf("%.1f MiB", mib(mem)), Status: statusInfo},
	}
}

// idle returns the daemon's CPU use over d as a percentage of one core,
// and its RSS at the end.
func idle(ctx context.Context, d time.Duration) (float64, int64, error) {
	e, err := newEnv(ctx, "idle", idleJails)
	if err != nil {
		return 0, 0, err
	}
	defer e.close()
	for _, f := range []string{"exim/mainlog", "icewarp/s20261128.log", "auth.log"} {
		p := filepath.Join(e.dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return 0, 0, err
		}
	}
	dm, err := e.start(ctx, false, 20*time.Second)
	if err != nil {
		return 0, 0, err
	}
	st, err := e.status(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, j := range shippedJails {
		if _, err := st.jail(j); err != nil {
			return 0, 0, err
		}
	}
	time.Sleep(2 * time.Second) // start-up work done
	pid := dm.pid()
	if c := comm(pid); c != "banwatchd" {
		return 0, 0, fmt.Errorf("process %d is %q, not banwatchd", pid, c)
	}
	c0, err := cpuTime(pid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-dm.done:
		return 0, 0, dm.alive()
	case <-time.After(d):
	}
	c1, err := cpuTime(pid)
	if err != nil {
		return 0, 0, err
	}
	el := time.Since(t0)
	mem, err := rss(pid)
	if err != nil {
		return 0, 0, err
	}
	return float64(c1-c0) / float64(el) * 100, mem, nil
}
