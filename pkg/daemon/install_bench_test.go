package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
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
// to a handler that only counts) from the write until the firewall was
// handed all n bans ("fw-bans/s") and until the store holds them all
// ("stored-bans/s"): the pipeline's and the store's share of bench/daemon's
// ban install measure, without the kernel.
//
//	go test -run '^$' -bench Install -benchtime 3x ./pkg/daemon
func BenchmarkInstall(b *testing.B) {
	const n = 100_000
	var rates, fwRates []float64
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
		lines := make([]string, n)
		stamp := time.Now().Format(time.Stamp)
		for i := range lines {
			a := netip.AddrFrom4([4]byte{198, byte(18 + i>>16), byte(i >> 8), byte(i)})
			lines[i] = fmt.Sprintf("%s mx postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
				stamp, 1000+i%30000, a)
		}
		fw := &addCounter{}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{Config: cfg, Logger: slog.New(fw), Ready: func() { close(ready) }})
		}()
		select {
		case <-ready:
		case err := <-done:
			b.Fatalf("daemon stopped at start: %v", err)
		}
		c := control.NewClient(sock)
		b.StartTimer()
		start := time.Now()
		testutil.AppendLines(b, logPath, lines...)
		for fw.n.Load() < n {
			if time.Since(start) > time.Minute {
				b.Fatalf("%d of %d bans handed to the firewall after a minute", fw.n.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		fwRates = append(fwRates, n/time.Since(start).Seconds())
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
	b.ReportMetric(benchref.Median(fwRates), "fw-bans/s")
	b.ReportMetric(benchref.Median(rates), "stored-bans/s")
}

// addCounter is a slog.Handler that counts the entries the "log" firewall
// reports added, and drops every record.
type addCounter struct{ n atomic.Int64 }

func (h *addCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *addCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "firewall add (log only)" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "entries" {
			h.n.Add(a.Value.Int64())
			return false
		}
		return true
	})
	return nil
}

func (h *addCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *addCounter) WithGroup(string) slog.Handler      { return h }
