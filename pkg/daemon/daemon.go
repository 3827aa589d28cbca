// Package daemon wires banwatch together: it follows the configured logs,
// matches their lines with the jails' filters, counts strikes in the jails,
// and commits what it learns (read positions, strikes, bans) to the store
// before it installs the bans in the firewall.
//
// The pipeline, made and owned by a generation (one run of one
// configuration; a reload starts the next):
//
//	sources ──lines──► processor (filters, jails) ──batches──► committer ──► store, then firewall
//
// The processor is the only goroutine that touches the jails; the committer
// is the only one that touches the firewall. At start the store's active
// bans are installed with their remaining time (Reconcile), and the jails'
// windows are rebuilt from the stored strikes, so a restart neither forgets
// a ban nor counts a line twice.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/firewall/logonly"
	"github.com/banwatch/banwatch/pkg/firewall/nft"
	"github.com/banwatch/banwatch/pkg/notify"
	"github.com/banwatch/banwatch/pkg/store"
)

// DBFile is the database's name inside the state directory.
const DBFile = "banwatch.db"

// Options configures Run.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Reload delivers reload requests (SIGHUP). Each one reloads the
	// configuration with LoadConfig; a configuration that does not load is
	// refused and the running one goes on.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// Poll makes the sources poll their files instead of using inotify.
	Poll bool
	// Backend, when set, is used instead of the one the configuration names
	// (tests).
	Backend firewall.Backend
	// Ready, when set, is called once the first generation runs: bans
	// restored, logs being followed.
	Ready func()
	// Reloading, when set, is called when a reload request is taken, and
	// Reloaded when that reload is over: the next generation runs, or the
	// new configuration was refused and the running one goes on.
	Reloading, Reloaded func()
	// Alive, when set, is called every AliveEvery from the first Ready on,
	// as long as the running generation's processor and committer each
	// answer a probe within AliveEvery: systemd's watchdog keep-alive.
	Alive      func()
	AliveEvery time.Duration
	// HoldLog, when set, is called before the log lines of a batch of bans
	// are written, and the function it returns after them: Logger's writer
	// can then write the batch at once rather than a line at a time.
	HoldLog func() (release func())
}

// Run runs the daemon until ctx is done, then commits what it has read and
// returns nil; the kernel keeps its bans (they expire on their own). It
// returns an error when it cannot start (no database, no firewall, no
// control socket) or the firewall fails for good.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if err := os.MkdirAll(cfg.Daemon.StateDir, 0o700); err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	st, err := store.Open(ctx, filepath.Join(cfg.Daemon.StateDir, DBFile), log.With("component", "store"))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer st.Close()

	backend := opts.Backend
	if backend == nil {
		backend, err = newBackend(cfg, log)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	defer backend.Close()

	d := &daemon{opts: opts, log: log, store: st, started: now(), reloads: make(chan chan error)}
	d.starting(cfg, backend)
	d.metrics = newMetrics(d)
	d.registerNotifyMetrics()
	// The cluster's syncer outlives generations, like the control socket
	// (started before it, which reads d.cluster); [cluster] changes only
	// with a restart.
	defer d.startCluster(ctx, cfg.Daemon.Cluster)()
	ln, err := control.Listen(cfg.Daemon.Socket, socketGID(cfg))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	srvDone := make(chan error, 1)
	go func() { srvDone <- control.NewServer(d, log.With("component", "control")).Serve(srvCtx, ln) }()
	defer func() {
		stopServer()
		<-srvDone
	}()
	log.Info("control socket ready", "socket", cfg.Daemon.Socket)
	if addr := cfg.Daemon.Metrics; addr != "" {
		stop, err := d.serveMetrics(context.WithoutCancel(ctx), addr)
		if err != nil {
			return err
		}
		defer stop()
	}
	stopWeb, err := d.startWeb(ctx, cfg)
	if err != nil {
		return err
	}
	defer stopWeb()

	// The notifier outlives generations, like the control socket: it
	// stops after the last generation has handed it its bans.
	d.startNotifier(ctx, cfg)
	defer d.stopNotifier()

	go d.reloader(ctx)
	first := true
	for {
		setMemoryLimit(cfg, log)
		genCtx, cancel := context.WithCancel(ctx)
		g := &generation{cfg: cfg, log: log, store: st, backend: backend, poll: opts.Poll,
			ctl: make(chan func(context.Context)), marks: make(chan mark, 64), procOps: make(chan func(context.Context)), remote: make(chan []ban.Strike, 16), remoteBans: make(chan *remoteBatch), probes: make(chan func()), dnsblHits: make(chan dnsblHit, 256),
			stopped: make(chan struct{}), metrics: d.metrics, notify: d.notifier(), holdLog: opts.HoldLog, cluster: d.cluster}
		d.mu.Lock()
		d.cur, d.cancel = g, cancel
		d.mu.Unlock()
		reply := d.takeReply()
		err := g.run(genCtx, func() {
			if first {
				first = false
				call(opts.Ready)
				if opts.Alive != nil && opts.AliveEvery > 0 {
					go d.watchdog(ctx)
				}
			} else {
				call(opts.Reloaded)
			}
			if reply != nil {
				reply <- nil
				reply = nil
			}
		})
		reloading := genCtx.Err() != nil && ctx.Err() == nil
		cancel()
		d.mu.Lock()
		d.retire(g)
		d.mu.Unlock()
		if err != nil && !reloading {
			if reply != nil {
				reply <- err
			}
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A newer reload stopped this generation while it started.
			log.Info("generation stopped while starting, for a newer configuration", "err", err)
			if reply != nil {
				reply <- nil
			}
		}
		prev := cfg
		d.mu.Lock()
		cfg = d.next
		d.mu.Unlock()
		if !cfg.Daemon.Notify.Equal(&prev.Daemon.Notify) {
			// What the old webhooks had not sent yet is posted once as
			// they stop; the digest periods start again.
			d.stopNotifier()
			d.startNotifier(ctx, cfg)
			log.Info("notifications restarted for the new [notify]", "webhooks", len(cfg.Daemon.Notify.Webhooks))
		}
		log.Info("configuration reloaded", "jails", len(cfg.Jails))
	}
}

// daemon is what outlives generations: the store, the control socket's
// view of the current generation, and reloads.
type daemon struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	started time.Time
	reloads chan chan error // reload requests; nil reply for a signal

	mu     sync.Mutex
	cur    *generation
	cancel context.CancelFunc
	next   *config.Config // the configuration of the next generation
	reply  chan error     // answered when the next generation runs

	metrics  *metrics
	jailBase map[string]*jailCounts // retired generations' counters, by jail (mu)
	logBase  map[string]*logCounts  // and by log (mu)

	notify     *notify.Notifier // the webhooks of [notify] (mu)
	notifyStop func()           // stops notify's Run and waits for it (Run's goroutine only)
	notifyCnt  notify.Counters  // what every notifier since the start did

	cluster *clusterSync // nil without [cluster]
}

// notifier returns the running notifier.
func (d *daemon) notifier() *notify.Notifier {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.notify
}

// startNotifier starts a notifier for cfg's [notify]; with no webhooks it
// sends nothing. It runs until stopNotifier.
func (d *daemon) startNotifier(ctx context.Context, cfg *config.Config) {
	n := notify.New(cfg.Daemon.Notify, d.log.With("component", "notify"), notify.Options{
		Counters:  &d.notifyCnt,
		UserAgent: "banwatch/" + version(),
		Active: func(ctx context.Context) (map[string]int, error) {
			return d.store.CountActive(ctx, now())
		},
	})
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.Run(nctx) // returns nil when nctx ends
	}()
	d.mu.Lock()
	d.notify = n
	d.mu.Unlock()
	d.notifyStop = func() {
		cancel()
		<-done
	}
	if len(cfg.Daemon.Notify.Webhooks) > 0 {
		d.log.Info("notifications on", "webhooks", len(cfg.Daemon.Notify.Webhooks), "host", n.Host())
	}
}

// stopNotifier stops the running notifier: it posts what is pending once
// (for at most two seconds) and returns.
func (d *daemon) stopNotifier() {
	if d.notifyStop != nil {
		d.notifyStop()
		d.notifyStop = nil
	}
}

// registerNotifyMetrics exposes the notifiers' counters.
func (d *daemon) registerNotifyMetrics() {
	for _, c := range []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"banwatch_notify_sent_total", "Webhook messages (ban, unban, digest) the endpoint took (2xx).", &d.notifyCnt.Sent},
		{"banwatch_notify_failed_total", "Webhook messages given up: retries used up, a 4xx answer, or the daemon stopping.", &d.notifyCnt.Failed},
		{"banwatch_notify_dropped_total", "Bans and unbans left out of a webhook message's list (beyond 100), counted in its totals only.", &d.notifyCnt.Dropped},
	} {
		d.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v.Load()) }))
	}
}

// current returns the running generation.
// starting makes the current generation, until the first one runs, one
// that has stopped and built nothing: the control socket, the cluster's
// syncer and the page, started before it, then wait for the next or
// answer that the pipeline is starting, as during a reload.
func (d *daemon) starting(cfg *config.Config, backend firewall.Backend) {
	g := &generation{cfg: cfg, log: d.log, store: d.store, backend: backend, stopped: make(chan struct{})}
	close(g.stopped)
	d.mu.Lock()
	d.cur = g
	d.mu.Unlock()
}

func (d *daemon) current() *generation {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

func (d *daemon) takeReply() chan error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.reply
	d.reply = nil
	return r
}

// reloader loads the configuration again on SIGHUP or banctl reload. A
// configuration with errors is refused and the running generation goes
// on; a good one ends the running generation, and Run starts the next.
func (d *daemon) reloader(ctx context.Context) {
	for {
		var reply chan error
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Reload:
		case reply = <-d.reloads:
		}
		call(d.opts.Reloading)
		answer := func(err error) {
			call(d.opts.Reloaded) // refused: the running generation goes on
			if reply != nil {
				reply <- err
			}
		}
		if d.opts.LoadConfig == nil {
			answer(errors.New("this daemon cannot load its configuration again"))
			continue
		}
		next, err := d.opts.LoadConfig()
		if err != nil {
			d.log.Error("reload refused: the new configuration has errors; the running one goes on", "err", err)
			answer(fmt.Errorf("the new configuration has errors; the running one goes on:\n%w", err))
			continue
		}
		d.mu.Lock()
		cfg := d.cur.cfg
		if next.Daemon.StateDir != cfg.Daemon.StateDir || next.Daemon.Firewall != cfg.Daemon.Firewall ||
			next.Daemon.Table != cfg.Daemon.Table || next.Daemon.Socket != cfg.Daemon.Socket ||
			next.Daemon.SocketGroup != cfg.Daemon.SocketGroup || next.Daemon.Metrics != cfg.Daemon.Metrics {
			d.log.Warn("state_dir, firewall, nft_table, socket, socket_group and metrics change only with a restart; keeping the running ones")
			next.Daemon.StateDir, next.Daemon.Firewall, next.Daemon.Table = cfg.Daemon.StateDir, cfg.Daemon.Firewall, cfg.Daemon.Table
			next.Daemon.Socket, next.Daemon.SocketGroup = cfg.Daemon.Socket, cfg.Daemon.SocketGroup
			next.Daemon.Metrics = cfg.Daemon.Metrics
		}
		if !next.Daemon.Cluster.Equal(&cfg.Daemon.Cluster) {
			d.log.Warn("[cluster] changes only with a restart; keeping the running one")
			next.Daemon.Cluster = cfg.Daemon.Cluster
		}
		d.keepWeb(cfg, next)
		if d.reply != nil {
			d.reply <- nil // superseded by this newer configuration
		}
		d.next, d.reply = next, reply
		d.cancel()
		d.mu.Unlock()
	}
}

// call calls f unless it is nil.
func call(f func()) {
	if f != nil {
		f()
	}
}

// socketGID is the group of the control socket, or -1 for root only.
func socketGID(cfg *config.Config) int {
	if cfg.Daemon.SocketGroup == "" {
		return -1
	}
	return cfg.Daemon.SocketGID
}

func newBackend(cfg *config.Config, log *slog.Logger) (firewall.Backend, error) {
	switch cfg.Daemon.Firewall {
	case "log":
		return logonly.New(log), nil
	case "nftables":
		return nft.New(log, nft.Options{Table: cfg.Daemon.Table})
	}
	return nil, errors.New("unknown firewall " + cfg.Daemon.Firewall)
}

// ownAddrs returns the host's own addresses, which are never banned.
func ownAddrs(log *slog.Logger) []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		log.Warn("cannot list the host's addresses; only loopback and the ignore lists protect them", "err", err)
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out
}

// now is the clock; a variable so that nothing else calls time.Now.
var now = time.Now

// setMemoryLimit sets Go's soft memory limit from [daemon] memory_limit,
// less what SQLite may hold outside Go's heap; without it, none.
func setMemoryLimit(cfg *config.Config, log *slog.Logger) {
	limit := int64(math.MaxInt64)
	if cfg.Daemon.MemoryLimit > 0 {
		limit = cfg.Daemon.MemoryLimit - config.SQLiteMemory
	}
	if old := debug.SetMemoryLimit(limit); old != limit && cfg.Daemon.MemoryLimit > 0 {
		log.Info("memory limit", "bytes", cfg.Daemon.MemoryLimit, "go_heap_limit", limit)
	}
}
