package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/notify"
	"github.com/banwatch/banwatch/pkg/store"
)

// commit owns the store's writes and the firewall. A batch's bans go to
// the kernel as soon as the batch arrives; the batch is then committed to
// the store by a writer goroutine, one transaction at a time, and what
// arrives meanwhile is merged and committed next. So bans reach the
// kernel at netlink's pace, not SQLite's. Nothing is lost by the order:
// the read positions are committed with the strikes and bans of the same
// lines, so after a crash the lines of bans not yet committed are read
// again and banned again. Everything else the committer does (control
// requests, expiry, repairs, pruning) first waits until the store holds
// every batch taken (flush), so it sees what the kernel has. It returns
// when batches is closed (the processor's last batch committed).
func (g *generation) commit(ctx context.Context, batches <-chan *batch, repair <-chan struct{}) error {
	// Batches keep coming after ctx is done (the last one); they are
	// committed whatever ctx says.
	bg := context.WithoutCancel(ctx)
	expire := time.NewTicker(expireEvery)
	defer expire.Stop()
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	var floods <-chan time.Time
	fr, _ := g.backend.(firewall.FloodReporter)
	for _, jr := range g.jails {
		if jr.cfg.ConnLimitBan && fr != nil {
			t := time.NewTicker(floodEvery)
			defer t.Stop()
			floods = t.C
			break
		}
	}
	var repairTimer <-chan time.Time
	w := &writer{g: g, ctx: bg, errs: &rateLog{log: g.log, count: g.countError}, req: make(chan store.Batch, 1), done: make(chan error, 1)}
	go w.run()
	defer close(w.req)
	logs, logged := make(chan []banLine, 64), make(chan struct{})
	go g.logBans(logs, logged)
	defer func() {
		close(logs)
		<-logged
	}()
	for {
		// While a commit runs and enough waits behind it, no batch is
		// taken: the processor then waits, and so do the sources.
		in := batches
		if w.full() {
			in = nil
		}
		select {
		case b, ok := <-in:
			if !ok {
				w.flush()
				if w.pending != nil {
					w.errs.error("store", "the last batch could not be committed; its lines will be read again", "err",
						g.store.Commit(bg, g.toStore(w.pending)))
				}
				return nil
			}
			if !g.install(bg, b, w.errs, logs) {
				w.add(b)
				w.flush()
				g.reconcile(bg, w.errs)
				continue
			}
			w.add(b)
		case err := <-w.done:
			w.finished(err)
		case fn := <-g.ctl:
			w.flush()
			fn(bg)
		case fn := <-g.probes:
			fn() // no flush: a store that lags behind a flood is no hang
		case <-floods:
			w.flush()
			g.recordFloods(bg, fr, w.errs)
		case <-expire.C:
			w.failed = false // a failed commit is tried again at least this often
			w.flush()
			if n, err := g.store.Expire(bg, now()); err != nil {
				w.errs.error("store", "closing expired bans failed", "err", err)
			} else if n > 0 {
				g.log.Info("bans expired", "count", n)
				g.notify.Expired(n) // counted in the digests, not notified one by one
			}
		case <-check.C:
			ok, err := g.backend.Check(bg)
			if err != nil {
				w.errs.error("firewall", "checking the firewall failed", "err", err)
			}
			if !ok && err == nil {
				g.log.Warn("the firewall table was changed by someone else; repairing")
				w.flush()
				g.reconcile(bg, w.errs)
			}
		case <-repair:
			if repairTimer == nil {
				repairTimer = time.After(repairDelay)
			}
		case <-repairTimer:
			repairTimer = nil
			g.log.Warn("the firewall table was changed by someone else; repairing")
			w.flush()
			g.reconcile(bg, w.errs)
		case <-prune.C:
			w.flush()
			t := now()
			var maxFind time.Duration
			for _, jr := range g.jails {
				maxFind = max(maxFind, jr.memory())
			}
			if _, err := g.store.Prune(bg, t.Add(-maxFind), t.Add(-g.cfg.Daemon.History)); err != nil {
				w.errs.error("store", "pruning old rows failed", "err", err)
			}
		}
		w.start()
	}
}

// extraProc gives the Go scheduler one more P than it had, once per
// process: the writer's thread holds a P while it runs SQLite, which
// would leave the rest of the daemon one P fewer; the kernel's scheduler,
// not Go's, then shares the cores, and the writer's nice value counts.
var extraProc sync.Once

// writer commits the committer's batches to the store in the background,
// one transaction at a time (committer only, but for the goroutine that
// runs a commit and reports on done).
type writer struct {
	g    *generation
	ctx  context.Context
	errs *rateLog
	// pending holds the batches taken since the running commit started,
	// merged, in order; a batch the store refused stays in front of it.
	pending *batch
	// running is the batch being committed, nil when none is; its result
	// comes on done.
	running *batch
	req     chan store.Batch
	done    chan error
	// failed is set when the last commit failed; what is pending is then
	// committed again when a batch comes, at expiry time, or at the end,
	// rather than at once over and over.
	failed bool
}

// add queues b (whose bans are already in the kernel) for the store.
func (w *writer) add(b *batch) {
	w.failed = false
	if w.pending == nil {
		w.pending = b
		return
	}
	w.pending.merge(b)
}

// full tells whether the writer has enough waiting that no more batches
// should be taken until the running commit ends.
func (w *writer) full() bool {
	return w.running != nil && w.pending != nil && len(w.pending.strikes)+len(w.pending.bans) >= retryStrikes/4
}

// start commits what is pending, unless a commit is running or the last
// one failed.
func (w *writer) start() {
	if w.running != nil || w.pending == nil || w.failed {
		return
	}
	b := w.pending
	w.running, w.pending = b, nil
	sb := w.g.toStore(b)
	w.req <- sb
}

// run commits the batches that come on req, one at a time, reporting each
// on done, until req is closed. It runs on a thread of its own at a lower
// scheduling priority (writerNice): when the machine's cores are all busy,
// as in a flood of bans, the processor and the firewall go first, and the
// store catches up when they idle.
func (w *writer) run() {
	extraProc.Do(func() { runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1) })
	runtime.LockOSThread()
	if err := lowerThreadPriority(writerNice); err != nil {
		runtime.UnlockOSThread()
		w.g.log.Debug("the store's writer keeps the normal priority", "err", err)
	}
	// Else never unlocked: the thread ends with the goroutine.
	for sb := range w.req {
		w.done <- w.g.store.Commit(w.ctx, sb)
	}
}

// finished takes the running commit's result. A batch the store refused
// is kept, its strikes bounded, and committed again with what came since.
func (w *writer) finished(err error) {
	b := w.running
	w.running = nil
	if err == nil {
		w.failed = false
		w.errs.recovered("store")
		return
	}
	w.failed = true
	w.errs.error("store", "committing failed; the bans are in the kernel and are committed when the store works again",
		"err", err, "bans", len(b.bans), "strikes", len(b.strikes))
	if w.pending != nil {
		b.merge(w.pending)
	}
	if len(b.strikes) > retryStrikes {
		b.strikes = b.strikes[len(b.strikes)-retryStrikes:]
	}
	w.pending = b
}

// flush waits for the running commit and commits what is pending, so that
// the store holds every batch taken (unless the store fails; then the
// batches stay pending, and flush does not try again).
func (w *writer) flush() {
	if w.running != nil {
		w.finished(<-w.done)
	}
	w.start()
	if w.running != nil {
		w.finished(<-w.done)
	}
}

// install puts b's bans into the kernel and hands their log lines to the
// ban logger (logBans); it reports false when the firewall refused them
// (the caller repairs it from the store).
func (g *generation) install(ctx context.Context, b *batch, errs *rateLog, logs chan<- []banLine) bool {
	if len(b.bans) == 0 {
		return true
	}
	t := now()
	entries := make([]firewall.Entry, 0, len(b.bans))
	lines := make([]banLine, 0, len(b.bans))
	for _, bn := range b.bans {
		if bn.Installed {
			continue
		}
		e, ok := entry(bn, t)
		if ok {
			entries = append(entries, e)
		}
		lines = append(lines, banLine{jail: bn.Jail, prefix: bn.Prefix, strikes: bn.Strikes, reason: bn.Reason,
			origin: bn.Origin, start: bn.Start, end: bn.End, first: bn.FirstEvent, last: bn.LastEvent})
	}
	// The log lines are handed over after the bans reach the kernel: the
	// hand-over may wait for the ban logger, and the entries' time left
	// was counted at t.
	err := g.backend.Add(ctx, entries)
	logs <- lines
	if err != nil {
		errs.error("firewall", "adding bans failed; repairing from the store", "err", err)
		return false
	}
	if g.metrics != nil && len(b.decided) == len(b.bans) {
		done := time.Now()
		for i, bn := range b.bans {
			if !bn.Installed {
				g.metrics.latency.Observe(done.Sub(b.decided[i]).Seconds())
			}
		}
	}
	for _, bn := range b.bans {
		bn.Installed = true
	}
	errs.recovered("firewall")
	return true
}

// banLine is what the log line of a ban says, copied from the ban: the
// store's writer sets fields of the ban meanwhile.
type banLine struct {
	jail        string
	prefix      netip.Prefix
	strikes     int
	reason      string
	origin      string
	start, end  time.Time
	first, last time.Time
}

// logBans logs the bans that come on in, a line each, in order, and hands
// them to the notifier (which never waits for its webhooks), until in is
// closed. Formatting and writing a line costs several microseconds, more
// than putting the ban into the kernel: a goroutine of its own keeps that
// off the committer's path during a flood of bans.
func (g *generation) logBans(in <-chan []banLine, done chan<- struct{}) {
	defer close(done)
	var evs []notify.Event
	for ls := range in {
		evs = evs[:0]
		release := func() {}
		if g.holdLog != nil && len(ls) > 1 {
			release = g.holdLog()
		}
		for _, l := range ls {
			g.log.Info("ban", "jail", l.jail, "ip", ban.IP(l.prefix), "strikes", l.strikes, "reason", l.reason,
				"for", config.FormatDuration(l.end.Sub(l.start)), "first", l.first.Format(time.RFC3339), "last", l.last.Format(time.RFC3339))
			evs = append(evs, notify.Event{Kind: config.NotifyBan, Prefix: l.prefix, Jail: l.jail, Origin: l.origin,
				Start: l.start, Until: l.end, Strikes: l.strikes, Reason: l.reason})
		}
		release()
		g.notify.Notify(evs...)
	}
}

// reconcile makes the kernel hold the store's active bans.
func (g *generation) reconcile(ctx context.Context, errs *rateLog) {
	t := now()
	active, err := g.store.Active(ctx, t)
	if err != nil {
		errs.error("store", "reading active bans failed", "err", err)
		return
	}
	entries, _ := g.entries(active, now()) // the time left counted after the store's read
	if err := g.backend.Reconcile(ctx, entries); err != nil {
		errs.error("firewall", "repairing the firewall failed", "err", err)
		return
	}
	g.log.Info("firewall repaired", "bans", len(entries), "took", time.Since(t).Round(time.Millisecond))
}

func (g *generation) toStore(b *batch) store.Batch {
	sb := store.Batch{Strikes: b.strikes, Bans: b.bans, EvidenceLimit: g.evidence}
	for _, p := range b.positions {
		sb.Positions = append(sb.Positions, p)
	}
	return sb
}

// merge appends later's contents to b (later's positions win).
func (b *batch) merge(later *batch) {
	for k, v := range later.positions {
		b.positions[k] = v
	}
	b.strikes = append(b.strikes, later.strikes...)
	b.bans = append(b.bans, later.bans...)
	b.decided = nil // used only when a batch is first installed
	b.lines += later.lines
}

// countError counts an error of component in the metrics.
func (g *generation) countError(component string) {
	if g.metrics != nil {
		g.metrics.errors.WithLabelValues(component).Inc()
	}
}

// rateLog logs an error of a component at most once per errorLogEvery, with
// the count of those it held back, and once when the component works again,
// with the count of errors since it failed.
type rateLog struct {
	log    *slog.Logger
	count  func(component string) // counts every error (metrics), if set
	last   map[string]time.Time
	held   map[string]int
	failed map[string]int // errors since the component last worked
}

func (r *rateLog) error(component, msg string, args ...any) {
	if r.last == nil {
		r.last, r.held, r.failed = map[string]time.Time{}, map[string]int{}, map[string]int{}
	}
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "err" && args[i+1] == nil {
			return
		}
	}
	r.failed[component]++
	if r.count != nil {
		r.count(component)
	}
	t := now()
	if t.Sub(r.last[component]) < errorLogEvery {
		r.held[component]++
		return
	}
	r.last[component] = t
	r.log.Error(msg, append(args, "component", component, "similar_errors_held_back", r.held[component])...)
	r.held[component] = 0
}

func (r *rateLog) recovered(component string) {
	if n := r.failed[component]; n > 0 {
		r.failed[component] = 0
		r.log.Info("working again", "component", component, "errors", n)
	}
}
