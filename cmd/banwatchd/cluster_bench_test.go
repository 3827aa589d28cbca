package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	got := make([]map[string]time.Time, len(nodes)) // by receiver: address → logged
	want := total * (len(nodes) - 1) * len(nodes)   // every ban on every other node
	waitFor(t, 120*time.Second, func() bool {
		for r := range nodes {
			got[r] = remoteBans(procs[r].log())
		}
		n := 0
		for r := range nodes {
			n += len(got[r])
		}
		return n >= want
	}, func() string {
		var s []string
		for r := range nodes {
			s = append(s, fmt.Sprintf("%s has %d of %d", names[r], len(got[r]), total*(len(nodes)-1)))
		}
		return strings.Join(s, "; ")
	})
	var lat []time.Duration
	for r := range nodes {
		for o := range nodes {
			if o == r {
				continue
			}
			for k := range total {
				at, ok := got[r][addr(o, k)]
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
}

// remoteBans reads a node's log for the bans it took from other nodes: the
// address and the time of the line.
func remoteBans(log string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, " msg=ban ") || !strings.Contains(l, " node=") {
			continue
		}
		var at time.Time
		var ip string
		for _, f := range strings.Fields(l) {
			switch {
			case strings.HasPrefix(f, "time="):
				at, _ = time.Parse(time.RFC3339Nano, f[len("time="):])
			case strings.HasPrefix(f, "ip="):
				ip = f[len("ip="):]
			}
		}
		if ip != "" && !at.IsZero() {
			out[ip] = at
		}
	}
	return out
}
