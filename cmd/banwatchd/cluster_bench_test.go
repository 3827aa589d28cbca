package main

import (
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/pgtest"
	"github.com/banwatch/banwatch/internal/testutil"
)

var (
	clusterBenchSeconds = flag.Int("cluster-bench-seconds", 0, "TestClusterPropagation: seconds of bans (0: skip the measurement)")
	clusterBenchRate    = flag.Int("cluster-bench-rate", 10000, "TestClusterPropagation: bans per second, across the 3 nodes")
	clusterBenchLog     = flag.String("cluster-bench-log", "info", "TestClusterPropagation: the nodes' --log-level")
	clusterBenchDump    = flag.String("cluster-bench-dump", "", "TestClusterPropagation: a directory to write the nodes' logs to")
)

// TestClusterPropagation measures how long the bans of a flood take to
// reach the other nodes of a 3-node cluster: each node's log gets a third
// of -cluster-bench-rate bans a second (max_strikes 1, one line a ban) for
// -cluster-bench-seconds; for every ban, the time from the write of its
// line on its node to its "ban" line on each other node, which a node
// logs once the ban is in its kernel. It reports p50, p99 and the largest,
// and fails only when a ban does not arrive. `make bench-cluster` runs it.
func TestClusterPropagation(t *testing.T) {
	if *clusterBenchSeconds == 0 {
		t.Skip("a measurement: run with -cluster-bench-seconds N (make bench-cluster)")
	}
	needRoot(t)
	srv := pgtest.Start(t)
	names := []string{"mx1", "mx2", "mx3"}
	nodes := make([]*env, len(names))
	procs := make([]*daemonProc, len(names))
	for i, name := range names {
		dir := t.TempDir()
		e := &env{t: t, ns: newNetns(t), dir: dir, state: filepath.Join(dir, "state")}
		e.logPath = testutil.PostfixJail(t, dir,
			fmt.Sprintf("\n[cluster]\npostgres = %q\nnode = %q\n", srv.DSN(), name), "max_strikes = 1\n")
		nodes[i] = e
		procs[i] = e.start("--log-level", *clusterBenchLog)
		waitLogged(t, procs[i], `msg="cluster connected"`, 15*time.Second)
	}

	// Node i bans 10+i.x.y.1: every address in a /24 of its own.
	perNode := *clusterBenchRate / len(nodes)
	total := perNode * *clusterBenchSeconds
	if total > 1<<16 {
		t.Fatalf("%d bans a node: at most %d", total, 1<<16)
	}
	addr := func(node, k int) string { return fmt.Sprintf("%d.%d.%d.1", 10+node, k>>8, k&0xff) }
	written := make([][]time.Time, len(nodes))
	const tick = 10 * time.Millisecond
	perTick := max(1, perNode*int(tick)/int(time.Second))
	var pids []int
	for _, d := range procs {
		pids = append(pids, d.cmd.Process.Pid)
	}
	cpu0 := sampleCPU(t, pids)
	var wg sync.WaitGroup
	start := time.Now()
	for i, e := range nodes {
		written[i] = make([]time.Time, total)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(e.logPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			next := time.Now()
			for k := 0; k < total; {
				var sb strings.Builder
				n := min(perTick, total-k)
				for j := range n {
					fmt.Fprintf(&sb, "%s mx postfix/smtpd[1]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
						time.Now().Format(time.Stamp), addr(i, k+j))
				}
				at := time.Now()
				if _, err := f.WriteString(sb.String()); err != nil {
					t.Error(err)
					return
				}
				for j := range n {
					written[i][k+j] = at
				}
				k += n
				next = next.Add(tick)
				time.Sleep(time.Until(next))
			}
		}()
	}
	wg.Wait()
	writing := time.Since(start)

	// Every node's bans on every other node, from their "ban" lines.
	got := make([]remoteBans, len(nodes))         // by receiver
	want := total * (len(nodes) - 1) * len(nodes) // every ban on every other node
	waitFor(t, 120*time.Second, func() bool {
		for r := range nodes {
			got[r].read(procs[r].log())
		}
		n := 0
		for r := range nodes {
			n += len(got[r].at)
		}
		return n >= want
	}, func() string {
		var s []string
		for r := range nodes {
			s = append(s, fmt.Sprintf("%s has %d of %d", names[r], len(got[r].at), total*(len(nodes)-1)))
		}
		return strings.Join(s, "; ")
	})
	cpu1 := sampleCPU(t, pids)
	wall := time.Since(start)
	var lat []time.Duration
	for r := range nodes {
		for o := range nodes {
			if o == r {
				continue
			}
			for k := range total {
				at, ok := got[r].at[addr(o, k)]
				if !ok {
					t.Fatalf("%s never logged %s's ban of %s", names[r], names[o], addr(o, k))
				}
				lat = append(lat, at.Sub(written[o][k]))
			}
		}
	}
	if *clusterBenchDump != "" {
		for r := range nodes {
			_ = os.WriteFile(filepath.Join(*clusterBenchDump, names[r]+".log"), []byte(procs[r].log()), 0o644)
		}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	t.Logf("CLUSTERBENCH %d bans/s for %d s across %d nodes (%d bans, written in %v): %d arrivals on other nodes, p50 %v, p90 %v, p99 %v, max %v",
		*clusterBenchRate, *clusterBenchSeconds, len(nodes), total*len(nodes), writing.Round(time.Millisecond), len(lat), q(0.5), q(0.9), q(0.99), lat[len(lat)-1].Round(time.Millisecond))
	bans := float64(total * len(nodes))
	busy, daemons, pg := cpu1.busy-cpu0.busy, cpu1.daemons-cpu0.daemons, cpu1.postgres-cpu0.postgres
	t.Logf("CLUSTERBENCH CPU from the first line to the last arrival (%v): the machine busy %v (%.2f of its %d cores); the nodes %v, %.0f µs a ban; PostgreSQL %v, %.0f µs a ban",
		wall.Round(time.Millisecond), busy.Round(time.Millisecond), busy.Seconds()/wall.Seconds(), runtime.NumCPU(),
		daemons.Round(time.Millisecond), float64(daemons.Microseconds())/bans, pg.Round(time.Millisecond), float64(pg.Microseconds())/bans)
}

// cpuTimes is CPU time used: by the whole machine (busy, all but idle and
// I/O wait), by the given processes, and by the postgres user's.
type cpuTimes struct{ busy, daemons, postgres time.Duration }

// clockTick is the kernel's USER_HZ, the unit of /proc's CPU times.
const clockTick = 100

// sampleCPU reads /proc for the machine's busy time, the CPU time of pids
// (user and system, with their waited-for children), and that of every
// process of the postgres user (a backend that ended meanwhile is not
// counted: the servers' backends live as long as the nodes' pools).
func sampleCPU(t *testing.T, pids []int) cpuTimes {
	t.Helper()
	var c cpuTimes
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait; not guest (counted in user)
			c.busy += time.Duration(n) * time.Second / clockTick
		}
	}
	procCPU := func(pid int) time.Duration {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		// Fields after the command's closing parenthesis: state is 3rd,
		// utime 14th, stime 15th, cutime 16th, cstime 17th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		var d time.Duration
		for _, i := range []int{11, 12, 13, 14} {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			d += time.Duration(n) * time.Second / clockTick
		}
		return d
	}
	for _, pid := range pids {
		c.daemons += procCPU(pid)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return c
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := os.Stat(filepath.Join("/proc", e.Name())); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && strconv.Itoa(int(sys.Uid)) == pg.Uid {
				c.postgres += procCPU(pid)
			}
		}
	}
	return c
}

// remoteBans collects the bans a node took from other nodes from its log:
// the address and the time of the line. The benchmark polls the logs while
// the nodes still work, on the same cores: each read parses only what was
// logged since the last.
type remoteBans struct {
	at   map[string]time.Time // address → the time of its "ban" line
	done int                  // bytes of the log parsed
}

// read parses the whole lines that log holds beyond what was read before.
func (rb *remoteBans) read(log string) {
	if rb.at == nil {
		rb.at = map[string]time.Time{}
	}
	end := strings.LastIndexByte(log, '\n') + 1
	if end <= rb.done {
		return
	}
	for l := range strings.SplitSeq(log[rb.done:end], "\n") {
		if !strings.Contains(l, " msg=ban ") || !strings.Contains(l, " node=") {
			continue
		}
		var at time.Time
		var ip string
		for f := range strings.FieldsSeq(l) {
			switch {
			case strings.HasPrefix(f, "time="):
				at, _ = time.Parse(time.RFC3339Nano, f[len("time="):])
			case strings.HasPrefix(f, "ip="):
				ip = f[len("ip="):]
			}
		}
		if ip != "" && !at.IsZero() {
			rb.at[ip] = at
		}
	}
	rb.done = end
}
