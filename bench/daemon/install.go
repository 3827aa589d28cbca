package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

func benchInstall(ctx context.Context, o *opts) []result {
	n := o.installN
	var out []result
	// Unpinned (judged, as the install has always been), then the daemon
	// and the floor each pinned to CPU 0, the harness on CPU 1.
	for _, pin := range []bool{false, true} {
		label := ""
		if pin {
			label = "1 CPU (taskset -c 0): "
		}
		took, notes, err := install(ctx, n, o.installPoll, pin)
		if err != nil {
			out = append(out, failed(label+"bans/s into nftables", err))
			continue
		}
		rate := float64(n) / took.Seconds()
		r := result{Measure: label + "bans/s into nftables", Value: rate, Unit: "bans/s",
			Result: commas(int64(rate)) + " bans/s", Target: "≥ 200,000 bans/s", Status: judge(rate >= 200_000),
			Notes: fmt.Sprintf("%s addresses, one banning line each (max_strikes = 1) in one write; %.2f s from the write to the last element in the kernel; %s",
				commas(int64(n)), took.Seconds(), notes)}
		if pin {
			r.Target, r.Status = "", statusInfo
		}
		out = append(out, r)
		ftook, fnotes, err := installFloor(ctx, n, pin)
		if err != nil {
			out = append(out, failed(label+"install floor: nxadm/tail and the kernel alone", err))
			continue
		}
		frate := float64(n) / ftook.Seconds()
		out = append(out, result{Measure: label + "install floor: nxadm/tail and the kernel alone", Value: frate, Unit: "bans/s",
			Result: commas(int64(frate)) + " bans/s", Status: statusInfo,
			Notes: fmt.Sprintf("the same lines read by bare nxadm/tail set as banwatchd sets it, each line's [address] added to the same set through pkg/firewall/nft, up to %d an Add (no filter, jail, store, log line or change watch); %.2f s; %s; banwatchd made %.0f%% of this rate",
				floorBatch, ftook.Seconds(), fnotes, 100*rate/frate)})
	}
	return out
}

// installLines returns the n lines that each ban a new address of the
// benchmarking range, and the address of line i.
func installLines(n int) (string, func(int) netip.Addr) {
	// 198.18.0.0/15, the benchmarking range.
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, byte(18 + i>>16), byte(i >> 8), byte(i)}) }
	var sb strings.Builder
	now := time.Now()
	for i := 0; i < n; i++ {
		sb.WriteString(saslFailure(now, addr(i), 1000+i%30000))
	}
	return sb.String(), addr
}

// install writes n lines that each ban a new address and returns the time
// from the write until the kernel's set held all n; with pin, the daemon
// runs on CPU 0 and this process on CPU 1.
func install(ctx context.Context, n int, poll, pin bool) (time.Duration, string, error) {
	if n > 1<<17 {
		return 0, "", fmt.Errorf("-install-n %d: at most %d", n, 1<<17)
	}
	e, err := newEnv(ctx, "install", plainJail(1, "10m"))
	if err != nil {
		return 0, "", err
	}
	defer e.close()
	if !poll {
		if err := e.watch(); err != nil {
			return 0, "", err
		}
	}
	d, err := e.start(ctx, pin, 20*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer pinHarness(pin)()
	data, addr := installLines(n)
	t0 := time.Now()
	if err := appendString(e.logPath, data); err != nil {
		return 0, "", err
	}
	probe := sample(n, 1000, addr)
	if poll {
		return pollKernel(ctx, e, d.alive, "bench", addr(n-1), probe, t0, 2*time.Minute)
	}
	end, how, err := waitKernel(ctx, e, d, "bench", n, probe, t0, 2*time.Minute)
	if err != nil {
		return 0, "", err
	}
	return end.Sub(t0), how, nil
}

// waitKernel waits until jail's IPv4 set holds n elements and returns
// when the last one arrived, from the monitor's notifications; then it
// asks the kernel for each address of probe. If the monitor lost
// notifications, it instead asks for probe every 250 ms until the kernel
// has them all, and returns that time (an upper bound).
func waitKernel(ctx context.Context, e *env, d *daemon, jail string, n int, probe []netip.Addr, t0 time.Time, within time.Duration) (time.Time, string, error) {
	deadline := t0.Add(within)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	nextReport := time.Now().Add(5 * time.Second)
	for {
		got, last, lost := e.mon.count(jail, "v4")
		if time.Now().After(nextReport) {
			progress("%s: %s of %s elements notified (%d overflows)", e.name, commas(int64(got)), commas(int64(n)), lost)
			nextReport = time.Now().Add(5 * time.Second)
		}
		if got >= n {
			has, err := kernelHas(e.ns, jail, "v4", probe)
			if err != nil {
				return time.Time{}, "", err
			}
			if has < len(probe) {
				return time.Time{}, "", fmt.Errorf("%s elements notified, but the kernel has only %d of %d probed", commas(int64(got)), has, len(probe))
			}
			// The probe can tell: an address never banned is not found.
			if none, err := kernelHas(e.ns, jail, "v4", []netip.Addr{netip.MustParseAddr("192.0.2.99")}); err != nil || none != 0 {
				return time.Time{}, "", fmt.Errorf("probing the kernel's set: 192.0.2.99 found (%d) or error (%v)", none, err)
			}
			return last, fmt.Sprintf("counted from the kernel's NEWSETELEM notifications (%s distinct elements), and %d probed addresses found in the kernel's set", commas(int64(got)), has), nil
		}
		if lost > 0 || e.mon.failed() != nil {
			has, err := kernelHas(e.ns, jail, "v4", probe)
			if err == nil && has == len(probe) {
				return time.Now(), fmt.Sprintf("the notifications overflowed the monitor's buffer %d times: done when all %d probed addresses were in the kernel's set, asked every 250 ms (an upper bound)", lost, has), nil
			}
		}
		if err := d.alive(); err != nil {
			return time.Time{}, "", err
		}
		if time.Now().After(deadline) {
			has, _ := kernelHas(e.ns, jail, "v4", probe)
			return time.Time{}, "", fmt.Errorf("timeout: %s of %s elements notified after %v (%d overflows), %d of %d probed addresses in the kernel",
				commas(int64(got)), commas(int64(n)), within, lost, has, len(probe))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, "", ctx.Err()
		case <-e.mon.changed:
		case <-tick.C:
		}
	}
}

// pollKernel asks the kernel every 2 ms for last, the address of the last
// line written, until the kernel has it, and returns the time from t0; then
// it checks that the kernel has every address of probe. The daemon installs
// its batches in the order of the lines, one transaction each, so the last
// address in the kernel means every earlier transaction is committed. No
// notifications are read: the monitor's work of decoding one notification
// per element is off the machine's two cores.
func pollKernel(ctx context.Context, e *env, alive func() error, jail string, last netip.Addr, probe []netip.Addr, t0 time.Time, within time.Duration) (time.Duration, string, error) {
	polls := 0
	// One socket for the asks, opened again every reopenEvery in case the
	// set was replaced.
	const reopenEvery = 250 * time.Millisecond
	var p *setProbe
	var opened time.Time
	defer func() {
		if p != nil {
			p.close()
		}
	}()
	for {
		var has int
		var err error
		if p != nil && time.Since(opened) >= reopenEvery {
			p.close()
			p = nil
		}
		if p == nil {
			p, err = openProbe(e.ns, jail, "v4")
			opened = time.Now()
		}
		if err == nil {
			has, err = p.has([]netip.Addr{last})
		}
		polls++
		if err == nil && has == 1 {
			took := time.Since(t0)
			n, err := kernelHas(e.ns, jail, "v4", probe)
			if err != nil {
				return 0, "", err
			}
			if n < len(probe) {
				return 0, "", fmt.Errorf("the last address is in the kernel, but only %d of %d probed addresses", n, len(probe))
			}
			return took, fmt.Sprintf("the kernel asked for the last line's address every 2 ms (%d asks), then %d probed addresses found", polls, n), nil
		}
		if err := alive(); err != nil {
			return 0, "", err
		}
		if time.Since(t0) > within {
			return 0, "", fmt.Errorf("timeout: %s not in the kernel after %v", last, within)
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// installFloor does what install does with banRate in place of the
// daemon, in a namespace of its own: the time from the write of the n
// lines until the kernel's set holds the last line's address.
func installFloor(ctx context.Context, n int, pin bool) (time.Duration, string, error) {
	e, err := newEnv(ctx, "install-floor", plainJail(1, "10m"))
	if err != nil {
		return 0, "", err
	}
	defer e.close()
	prefix := []string{"ip", "netns", "exec", e.ns}
	if pin {
		prefix = append(prefix, "taskset", "-c", "0")
	}
	h, err := startHelper(ctx, prefix, "banrate", "-file", e.logPath, "-n", fmt.Sprint(n), "-timeout", "2m")
	if err != nil {
		return 0, "", err
	}
	defer h.stop()
	defer pinHarness(pin)()
	data, addr := installLines(n)
	t0 := time.Now()
	if err := appendString(e.logPath, data); err != nil {
		return 0, "", err
	}
	// A clean exit after the last Add is no failure: the bans stay.
	return pollKernel(ctx, e, h.failed, "bench", addr(n-1), sample(n, 1000, addr), t0, 2*time.Minute)
}
