package daemon

import (
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include all of labels ("k=v"), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// A scrape shows what the daemon did: lines per log, events by kind, the
// ban made and active, its latency, no lag; the counters do not restart at
// a reload.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.setDaemon("metrics = \"127.0.0.1:0\"\n")
	reload := make(chan struct{}, 1)
	defer e.startWith(Options{Reload: reload})()
	m := regexp.MustCompile(`msg="metrics ready" addr=(\S+)`).FindStringSubmatch(e.logBuf.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", e.logBuf)
	}
	url := "http://" + m[1] + "/metrics"

	lines := append(failures("203.0.113.7", 5), "Nov 28 00:00:00 mx postfix/smtpd[1]: connect from unknown[198.51.100.10]")
	e.appendLines(lines...)
	e.waitBanned("203.0.113.7")
	want := func(what string, name string, v float64, labels ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, ok := value(scrape(t, url), name, labels...)
			if ok && got == v {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %s%v = %v (present: %v), want %v", what, name, labels, got, ok, v)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	logLabel := "log=" + e.logPath
	want("lines read", "banwatch_log_lines_read_total", 6, logLabel)
	want("no lag", "banwatch_log_lag_bytes", 0, logLabel)
	want("events", "banwatch_events_total", 5, "jail=postfix", "event=auth_failure")
	want("no bad HELO", "banwatch_events_total", 0, "jail=postfix", "event=bad_helo")
	want("bans made", "banwatch_bans_total", 1, "jail=postfix")
	want("bans active", "banwatch_bans_active", 1, "jail=postfix")
	want("latency observed", "banwatch_ban_latency_seconds", 1)
	want("no store errors", "banwatch_errors_total", 0, "component=store")
	fams := scrape(t, url)
	for _, name := range []string{"banwatch_build_info", "go_goroutines", "process_resident_memory_bytes", "banwatch_tracked_addresses"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	if h := fams["banwatch_ban_latency_seconds"].Metric[0].Histogram; h.GetSampleSum() <= 0 || h.GetSampleSum() > 5 {
		t.Errorf("ban latency %v s", h.GetSampleSum())
	}

	// A reload starts a new generation; the counters go on from where
	// they were.
	reload <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.logBuf.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("not reloaded:\n%s", e.logBuf)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.appendLines(failures("203.0.113.8", 2)...)
	want("lines after the reload", "banwatch_log_lines_read_total", 8, logLabel)
	want("events after the reload", "banwatch_events_total", 7, "jail=postfix", "event=auth_failure")
	want("bans after the reload", "banwatch_bans_total", 1, "jail=postfix")
}

// Store failures are counted, every one, even those the log holds back.
func TestMetricsCountStoreErrors(t *testing.T) {
	g := &generation{log: slog.New(slog.DiscardHandler), metrics: newMetrics(&daemon{})}
	r := &rateLog{log: g.log, count: g.countError}
	for range 3 {
		r.error("store", "committing failed", "err", os.ErrPermission)
	}
	r.error("store", "no error", "err", nil) // not an error
	var m dto.Metric
	if err := g.metrics.errors.WithLabelValues("store").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.Counter.GetValue(); got != 3 {
		t.Errorf("banwatch_errors_total{component=store} = %v, want 3", got)
	}
}
