package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/benchref"
	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// BenchmarkInstall appends n SASL failure lines of n distinct addresses in
// one write to a log that a plain jail banning on the first strike follows
// (no subnets, fingerprints or escalation), and times the daemon
// (in-process, real SQLite store, the "log" firewall, logging at info level
// to nowhere) from the write until its store holds all n bans: the store's
// and the pipeline's share of bench/daemon's ban install measure, without
// the kernel.
//
//	go test -run '^$' -bench Install -benchtime 3x ./pkg/daemon
func BenchmarkInstall(b *testing.B) {
	const n = 100_000
	var rates []float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		logPath := filepath.Join(dir, "mail.log")
		sock := filepath.Join(dir, "banwatch.sock")
		testutil.WriteFile(b, filepath.Join(dir, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\nfirewall = \"log\"\n", filepath.Join(dir, "state"), sock))
		jails := fmt.Sprintf("[bench]\nenabled = true\nfilter = \"postfix\"\nlogs = [%q]\nports = [25]\nmax_strikes = 1\nfind_time = \"10m\"\nban_time = \"1d\"\nmax_tracked = 2000000\n", logPath)
		for _, j := range []string{"postfix", "exim", "dovecot", "icewarp", "sshd"} {
			jails += "[" + j + "]\nenabled = false\n"
		}
		testutil.WriteFile(b, filepath.Join(dir, "jails", "bench.toml"), jails)
		testutil.WriteFile(b, logPath, "")
		cfg, err := config.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		now := time.Now()
		for i := 0; i < n; i++ {
			a := netip.AddrFrom4([4]byte{198, byte(18 + i>>16), byte(i >> 8), byte(i)})
			fmt.Fprintf(&sb, "%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
				now.Format(time.Stamp), 1000+i%30000, a)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func() { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			b.Fatalf("daemon stopped at start: %v", err)
		}
		c := control.NewClient(sock)
		b.StartTimer()
		start := time.Now()
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.WriteString(sb.String()); err != nil {
			b.Fatal(err)
		}
		f.Close()
		for {
			st, err := c.Status(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			var active int
			for _, j := range st.Jails {
				if j.Name == "bench" {
					active = j.Active
				}
			}
			if active >= n {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%d of %d bans after a minute", active, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		rates = append(rates, n/took.Seconds())
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchref.Median(rates), "bans/s")
}
