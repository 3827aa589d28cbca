package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/banwatch/banwatch/pkg/dnsbl"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/source"
)

// The daemon's Prometheus metrics. Most are read when scraped from the
// counters the daemon keeps anyway (the same as banctl status), so that
// the hot path pays nothing for them; counters add the retired
// generations' counts, so that they never go down at a reload. Only the
// ban latency and the error counts are recorded as they happen.

// metrics is what the daemon exposes on [daemon] metrics.
type metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram   // from the processor taking the banning line to the kernel's acknowledgement
	errors  *prometheus.CounterVec // failures of the firewall and the store
}

// jailCounts are a jail's counters summed over retired generations.
type jailCounts struct {
	lines, events, unparsable, strikes, bans, forgiven int64
	kinds                                              [event.NumKinds]int64
	dnsbl                                              dnsbl.Stats
}

// logCounts are a log's counters summed over retired generations.
type logCounts struct{ lines, skipped int64 }

func newMetrics(d *daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "banwatch_ban_latency_seconds",
			Help: "Time from the processor taking the log line that made a ban to the firewall acknowledging the ban.",
			// 100 µs to about 3 s.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "banwatch_errors_total",
			Help: "Failures of a component: firewall (nftables) or store (SQLite), each one, logged or held back.",
		}, []string{"component"}),
	}
	for _, c := range []string{"firewall", "store"} {
		m.errors.WithLabelValues(c) // present at 0 from the start
	}
	m.reg.MustRegister(m.latency, m.errors, &statusCollector{d: d},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// serveMetrics serves /metrics on addr until ctx is done. It returns once
// it listens (or could not).
func (d *daemon) serveMetrics(ctx context.Context, addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("daemon: metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{d}, Timeout: 20 * time.Second, MaxRequestsInFlight: 4,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics endpoint failed", "err", err)
		}
	}()
	d.log.Info("metrics ready", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}

// slogPrinter gives promhttp the daemon's logger.
type slogPrinter struct{ d *daemon }

func (p slogPrinter) Println(v ...any) { p.d.log.Warn("metrics: " + fmt.Sprint(v...)) }

// retire adds g's counters to the daemon's sums; from then on the
// collector reads them there. Called with d.mu held, when g has ended.
func (d *daemon) retire(g *generation) {
	g.retired = true
	if d.jailBase == nil {
		d.jailBase, d.logBase = map[string]*jailCounts{}, map[string]*logCounts{}
	}
	for _, jr := range g.jails {
		c := d.jailBase[jr.cfg.Name]
		if c == nil {
			c = &jailCounts{}
			d.jailBase[jr.cfg.Name] = c
		}
		c.add(jr)
	}
	for _, f := range g.files {
		fs := f.Stats()
		c := d.logBase[logName(f, fs.Path)]
		if c == nil {
			c = &logCounts{}
			d.logBase[logName(f, fs.Path)] = c
		}
		c.lines += fs.Lines
		c.skipped += fs.Skipped
	}
}

// add adds a running jail's counters to c.
func (c *jailCounts) add(jr *jailRun) {
	c.lines += jr.lines.Load()
	c.events += jr.events.Load()
	c.unparsable += jr.unparsable.Load()
	c.strikes += jr.strikes.Load()
	c.bans += jr.bans.Load()
	c.forgiven += jr.trusted.Load()
	for k := range c.kinds {
		c.kinds[k] += jr.kinds[k].Load()
	}
	if jr.resolver != nil {
		s := jr.resolver.Stats()
		c.dnsbl.Lookups += s.Lookups
		c.dnsbl.CacheHits += s.CacheHits
		c.dnsbl.Listed += s.Listed
		c.dnsbl.NotListed += s.NotListed
		c.dnsbl.Refused += s.Refused
		c.dnsbl.Errors += s.Errors
		c.dnsbl.Dropped += s.Dropped
	}
}

// logName is the name a log goes by in the metrics: its path, or its
// pattern for a pattern source (whose file changes).
func logName(f statser, path string) string {
	if p, ok := f.(*patternSource); ok {
		return p.pattern
	}
	return path
}

// statusCollector reads the daemon's counters when scraped.
type statusCollector struct{ d *daemon }

var (
	descLogLines   = prometheus.NewDesc("banwatch_log_lines_read_total", "Lines read from a log (a pattern counts all its files).", []string{"log"}, nil)
	descLogSkipped = prometheus.NewDesc("banwatch_log_lines_skipped_total", "Lines of a log skipped whole: longer than the longest line taken.", []string{"log"}, nil)
	descLogLag     = prometheus.NewDesc("banwatch_log_lag_bytes", "Bytes of the log file not read yet: its size less the read position.", []string{"log"}, nil)
	descJailLines  = prometheus.NewDesc("banwatch_jail_lines_total", "Lines a jail matched against its filter.", []string{"jail"}, nil)
	descEvents     = prometheus.NewDesc("banwatch_events_total", "Events a jail's filter found, by kind.", []string{"jail", "event"}, nil)
	descUnparsable = prometheus.NewDesc("banwatch_unparsable_lines_total", "Lines of a jail's logs without a time banwatch can read.", []string{"jail"}, nil)
	descStrikes    = prometheus.NewDesc("banwatch_strikes_total", "Strikes counted against addresses.", []string{"jail"}, nil)
	descForgiven   = prometheus.NewDesc("banwatch_forgiven_total", "Failed logins and bad HELOs of trusted clients, not counted.", []string{"jail"}, nil)
	descBans       = prometheus.NewDesc("banwatch_bans_total", "Bans the jail made since the daemon started (manual bans not included).", []string{"jail"}, nil)
	descTracked    = prometheus.NewDesc("banwatch_tracked_addresses", "Addresses whose strikes a jail counts now.", []string{"jail"}, nil)
	descActive     = prometheus.NewDesc("banwatch_bans_active", "Active bans in the store, by jail (manual included).", []string{"jail"}, nil)
	descStored     = prometheus.NewDesc("banwatch_bans_stored", "Bans in the store, active and ended (ended ones are kept for [daemon] history).", []string{"jail"}, nil)
	descDNSBL      = prometheus.NewDesc("banwatch_dnsbl_lookups_total", "A jail's DNSBL look-ups by result: cache_hit, listed, not_listed, refused, error, dropped.", []string{"jail", "result"}, nil)
	descInfo       = prometheus.NewDesc("banwatch_build_info", "The running banwatchd's version.", []string{"version"}, nil)
	descUp         = prometheus.NewDesc("banwatch_store_up", "1 when the store answered the scrape's counts, 0 when it failed.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLogLines, descLogSkipped, descLogLag, descJailLines, descEvents, descUnparsable,
		descStrikes, descForgiven, descBans, descTracked, descActive, descStored, descDNSBL, descInfo, descUp} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, version())

	// The store's counts first, outside the lock: they read SQLite.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := now()
	active, err1 := d.store.CountActive(ctx, t)
	stored, err2 := d.store.CountAll(ctx)
	if err1 == nil && err2 == nil {
		gauge(descUp, 1)
		for j, n := range active {
			gauge(descActive, float64(n), j)
		}
		for j, n := range stored {
			gauge(descStored, float64(n), j)
		}
	} else {
		gauge(descUp, 0)
	}

	d.mu.Lock()
	g := d.cur
	jails := map[string]*jailCounts{}
	for name, base := range d.jailBase {
		cp := *base
		jails[name] = &cp
	}
	logs := map[string]*logCounts{}
	for name, base := range d.logBase {
		cp := *base
		logs[name] = &cp
	}
	var tracked map[string]int64
	lag := map[string]float64{}
	stats := map[string]source.FileStats{}
	if g != nil && !g.retired && g.built.Load() {
		tracked = map[string]int64{}
		for _, jr := range g.jails {
			jc := jails[jr.cfg.Name]
			if jc == nil {
				jc = &jailCounts{}
				jails[jr.cfg.Name] = jc
			}
			jc.add(jr)
			tracked[jr.cfg.Name] = jr.tracked.Load()
		}
		for _, f := range g.files {
			fs := f.Stats()
			name := logName(f, fs.Path)
			lc := logs[name]
			if lc == nil {
				lc = &logCounts{}
				logs[name] = lc
			}
			lc.lines += fs.Lines
			lc.skipped += fs.Skipped
			stats[name] = fs
		}
	}
	d.mu.Unlock()
	// The files are statted outside the lock.
	for name, fs := range stats {
		if n, ok := fs.Lag(); ok {
			lag[name] = float64(n)
		}
	}

	for name, lc := range logs {
		counter(descLogLines, lc.lines, name)
		counter(descLogSkipped, lc.skipped, name)
	}
	for name, v := range lag {
		gauge(descLogLag, v, name)
	}
	for name, jc := range jails {
		counter(descJailLines, jc.lines, name)
		for k, kind := range event.Known {
			counter(descEvents, jc.kinds[k], name, string(kind))
		}
		counter(descUnparsable, jc.unparsable, name)
		counter(descStrikes, jc.strikes, name)
		counter(descForgiven, jc.forgiven, name)
		counter(descBans, jc.bans, name)
		if n, ok := tracked[name]; ok {
			gauge(descTracked, float64(n), name)
		}
		if s := jc.dnsbl; s.Lookups > 0 || s.Dropped > 0 {
			for _, r := range []struct {
				result string
				n      uint64
			}{{"cache_hit", s.CacheHits}, {"listed", s.Listed}, {"not_listed", s.NotListed}, {"refused", s.Refused}, {"error", s.Errors}, {"dropped", s.Dropped}} {
				counter(descDNSBL, int64(r.n), name, r.result)
			}
		}
	}
}
