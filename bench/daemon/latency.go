package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// benchJail is a plain jail on the postfix filter: no fingerprints,
// subnets, trust or escalation, so that every address is banned on its
// own strikes and nothing else.
const benchJail = `[bench]
enabled = true
filter = "postfix"
logs = [%LOG%]
ports = [25]
max_strikes = %STRIKES%
find_time = "%FIND%"
ban_time = "1d"
max_tracked = 2000000
`

func plainJail(strikes int, find string) string {
	return strings.NewReplacer("%STRIKES%", fmt.Sprint(strikes), "%FIND%", find).Replace(benchJail)
}

// saslFailure is a Postfix SASL failure line of addr stamped t, as syslog
// writes it.
func saslFailure(t time.Time, addr netip.Addr, pid int) string {
	return fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
		t.Format(time.Stamp), pid, addr)
}

// appendString appends s to path in one write.
func appendString(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}

func benchLatency(ctx context.Context, o *opts) []result {
	n := o.latencyN
	lat, timeouts, err := latency(ctx, n)
	if err != nil {
		return []result{failed("write to kernel", err)}
	}
	if len(lat) == 0 {
		return []result{failed("write to kernel", fmt.Errorf("timeout: none of %d bans reached the kernel", n))}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	notes := fmt.Sprintf("%d bans, one at a time, 5 ms apart; write() of the 5th strike to the kernel's NEWSETELEM notification", len(lat))
	if timeouts > 0 {
		notes += fmt.Sprintf("; %d not in the kernel within 2 s", timeouts)
	}
	row := func(name string, d time.Duration, target string, ok bool) result {
		st := statusInfo
		if target != "" {
			st = judge(ok && timeouts == 0)
		}
		return result{Measure: name, Value: float64(d.Microseconds()) / 1000, Unit: "ms",
			Result: fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000), Target: target, Status: st}
	}
	rs := []result{
		row("p50 write to kernel", pct(0.50), "", true),
		row("p90 write to kernel", pct(0.90), "", true),
		row("p99 write to kernel", pct(0.99), "≤ 50 ms", pct(0.99) <= 50*time.Millisecond),
		row("max write to kernel", lat[len(lat)-1], "", true),
	}
	rs[0].Notes = notes
	return rs
}

// latency times n bans; it returns the latencies of those that arrived
// and how many did not within 2 s.
func latency(ctx context.Context, n int) ([]time.Duration, int, error) {
	e, err := newEnv(ctx, "latency", plainJail(5, "10m"))
	if err != nil {
		return nil, 0, err
	}
	defer e.close()
	if err := e.watch(); err != nil {
		return nil, 0, err
	}
	d, err := e.start(ctx, false, 20*time.Second)
	if err != nil {
		return nil, 0, err
	}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i / 200), byte(i%200 + 1)}) }
	// Four strikes of each address, written ahead.
	var sb strings.Builder
	now := time.Now()
	for k := 0; k < 4; k++ {
		for i := 0; i < n; i++ {
			sb.WriteString(saslFailure(now, addr(i), 1000+k))
		}
	}
	if err := appendString(e.logPath, sb.String()); err != nil {
		return nil, 0, err
	}
	j, err := e.waitLines(ctx, "bench", int64(4*n), 60*time.Second)
	if err != nil {
		return nil, 0, err
	}
	if j.Strikes != int64(4*n) || j.Bans != 0 {
		return nil, 0, fmt.Errorf("after the first four strikes of each address: %d strikes, %d bans; want %d and 0", j.Strikes, j.Bans, 4*n)
	}
	time.Sleep(200 * time.Millisecond) // let the last batch's commit finish
	f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var lat []time.Duration
	timeouts := 0
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("timeout: %d of %d bans timed in 3 minutes", i, n)
		}
		a := addr(i)
		line := []byte(saslFailure(time.Now(), a, 1004))
		ch := e.mon.expect(a)
		t0 := time.Now()
		if _, err := f.Write(line); err != nil {
			return nil, 0, err
		}
		select {
		case at := <-ch:
			lat = append(lat, at.Sub(t0))
		case <-time.After(2 * time.Second):
			e.mon.forget(a)
			timeouts++
			if err := d.alive(); err != nil {
				return nil, 0, err
			}
			if err := e.mon.failed(); err != nil {
				return nil, 0, fmt.Errorf("nftables monitor: %w", err)
			}
			if timeouts >= 10 {
				return nil, 0, fmt.Errorf("timeout: 10 bans not in the kernel within 2 s (after %d timed)", len(lat))
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, lost := e.mon.count("bench", "v4"); lost > 0 {
		progress("latency: the monitor lost notifications %d times (buffer overflow)", lost)
	}
	return lat, timeouts, nil
}
