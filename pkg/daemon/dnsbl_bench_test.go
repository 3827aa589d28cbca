package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
)

// BenchmarkPipelineDNSBL reads 20,000 failure lines of distinct addresses
// (each asks the block list) through the daemon, with no DNSBL, with a
// DNSBL that answers, and with one that never answers, and reports lines
// per second from start to the last line counted.
//
//	go test -run '^$' -bench PipelineDNSBL -benchtime 3x ./pkg/daemon
func BenchmarkPipelineDNSBL(b *testing.B) {
	const n = 20000
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer dead.Close()
	live := testutil.NewDNSServer(b, nil)
	for _, c := range []struct{ name, jail string }{
		{"off", ""},
		{"answering", fmt.Sprintf("dnsbl = [\"bl.test\"]\ndns_server = %q", live.Addr)},
		{"dead", fmt.Sprintf("dnsbl = [\"bl.test\"]\ndns_server = %q", dead.LocalAddr().String())},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b)
				testutil.PostfixJail(b, e.dir, "firewall = \"log\"\n", c.jail)
				if e.cfg, err = config.Load(e.dir); err != nil {
					b.Fatal(err)
				}
				var lines []string
				stamp := time.Now().Format(time.Stamp)
				for k := 0; k < n; k++ {
					lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[1]: warning: unknown[10.%d.%d.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
						stamp, k>>16, k>>8&255, k&255))
				}
				os.WriteFile(e.logPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
				b.StartTimer()
				start := time.Now()
				stop := e.start()
				c := e.client()
				for {
					st, err := c.Status(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					done := false
					for _, j := range st.Jails {
						done = done || j.Name == "postfix" && j.Lines >= n
					}
					if done {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "lines/s")
				b.StopTimer()
				stop()
			}
		})
	}
}
