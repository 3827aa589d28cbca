package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
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
	w := &writer{g: g, ctx: bg, errs: &rateLog{log: g.log, count: g.countError}, req: make(chan writeReq, 1), done: make(chan writeResult, 1)}
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
		in, remote := batches, g.remoteBans
		if w.full() {
			in = nil
		}
		if w.remoteFull() {
			remote = nil
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
		case rb := <-remote:
			if !g.installRemote(bg, rb, w.errs, logs) {
				w.addRemote(rb)
				w.flush()
				g.reconcile(bg, w.errs)
				continue
			}
			w.addRemote(rb)
		case res := <-w.done:
			w.finished(res)
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
			if _, err := g.store.Prune(bg, t.Add(-g.memory()), t.Add(-g.cfg.Daemon.History)); err != nil {
				w.errs.error("store", "pruning old rows failed", "err", err)
			}
		}
		w.start()
	}
}

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
	// remote holds other nodes' bans (cluster mode), already in the
	// kernel, in order, for the store; runningRemote is the part being
	// stored. Commits of this node's batches and of these take turns
	// (lastRemote: which went last), so that a flood of other nodes'
	// bans never holds back this node's outbox.
	remote        []*remoteBatch
	remoteBans    int // bans in remote
	runningRemote []*remoteBatch
	lastRemote    bool
	req           chan writeReq
	done          chan writeResult
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

// addRemote queues rb (whose bans are already in the kernel) for the
// store.
func (w *writer) addRemote(rb *remoteBatch) {
	w.failed = false
	w.remote = append(w.remote, rb)
	w.remoteBans += len(rb.bans)
}

// busy tells whether a commit is running.
func (w *writer) busy() bool { return w.running != nil || w.runningRemote != nil }

// full tells whether the writer has enough waiting that no more batches
// should be taken until the running commit ends.
func (w *writer) full() bool {
	return w.busy() && w.pending != nil && len(w.pending.strikes)+len(w.pending.bans) >= retryStrikes/4
}

// remoteFull tells whether so many of other nodes' bans wait for the
// store that no more should be taken (the cluster keeps them meanwhile).
func (w *writer) remoteFull() bool { return w.remoteBans >= remoteBacklog }

// A writeReq is a commit for the writer's goroutine: this node's batch,
// or (remote set) other nodes' bans and the cluster cursor after them.
type writeReq struct {
	local  store.Batch
	remote bool
	bans   []store.Remote
	cursor int64
}

// A writeResult is a commit's outcome; applied is set for other nodes'
// bans.
type writeResult struct {
	err     error
	applied store.Applied
}

// start commits what is pending, unless a commit is running or the last
// one failed. This node's batches and other nodes' bans take turns.
func (w *writer) start() {
	if w.busy() || w.failed {
		return
	}
	switch {
	case w.pending != nil && (len(w.remote) == 0 || w.lastRemote):
		b := w.pending
		w.running, w.pending, w.lastRemote = b, nil, false
		w.req <- writeReq{local: w.g.toStore(b)}
	case len(w.remote) > 0:
		// At most about clusterApply bans a commit, so that this node's
		// next batch does not wait long for its turn.
		n, bans := 0, 0
		for n < len(w.remote) && (n == 0 || bans+len(w.remote[n].bans) <= clusterApply) {
			bans += len(w.remote[n].bans)
			n++
		}
		run := w.remote[:n:n]
		w.remote = w.remote[n:]
		w.remoteBans -= bans
		w.runningRemote, w.lastRemote = run, true
		req := writeReq{remote: true, bans: make([]store.Remote, 0, bans)}
		for _, rb := range run {
			req.bans = append(req.bans, rb.bans...)
			if rb.cursor != 0 {
				req.cursor = rb.cursor
			}
		}
		w.req <- req
	}
}

// run commits the batches that come on req, one at a time, reporting each
// on done, until req is closed. It runs on a thread of its own at a lower
// scheduling priority (writerNice): when the machine's cores are all busy,
// as in a flood of bans, the processor and the firewall go first, and the
// store catches up when they idle.
func (w *writer) run() {
	// The writer gets no P of its own (GOMAXPROCS stays Go's): with one
	// more P than CPUs, each hand-over between goroutines may wake
	// another thread for the kernel to switch to. Pinned to one CPU the
	// ingest read 62-67% of bare nxadm/tail's rate with one more P and
	// 78-85% without; on two CPUs 66-86% (median 78%) with and 83-92%
	// without, while a flood of 100,000 bans went in about 7% slower
	// (bench/daemon -only ingest,install, alternating; docs/benchmarks.md).
	runtime.LockOSThread()
	if err := lowerThreadPriority(writerNice); err != nil {
		runtime.UnlockOSThread()
		w.g.log.Debug("the store's writer keeps the normal priority", "err", err)
	}
	// Else never unlocked: the thread ends with the goroutine.
	for r := range w.req {
		if r.remote {
			a, err := w.g.store.ApplyRemote(w.ctx, r.bans, r.cursor, now())
			w.done <- writeResult{err: err, applied: a}
			continue
		}
		w.done <- writeResult{err: w.g.store.Commit(w.ctx, r.local)}
	}
}

// finished takes the running commit's result. A batch the store refused
// is kept, its strikes bounded, and committed again with what came since.
func (w *writer) finished(res writeResult) {
	if run := w.runningRemote; run != nil {
		w.runningRemote = nil
		if res.err != nil {
			w.failed = true
			w.errs.error("store", "storing other nodes' bans failed; they are in the kernel and are stored when the store works again",
				"err", res.err)
			for _, rb := range run {
				w.remoteBans += len(rb.bans)
			}
			w.remote = append(run, w.remote...)
			return
		}
		w.failed = false
		w.errs.recovered("store")
		w.g.reinstall(w.ctx, res.applied.Replaced, w.errs)
		return
	}
	err := res.err
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
	for {
		if w.busy() {
			w.finished(<-w.done)
		}
		w.start()
		if !w.busy() {
			return
		}
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
		lines = append(lines, lineOf(bn))
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
	if g.cluster != nil {
		g.cluster.offer(b.bans)
	}
	for _, bn := range b.bans {
		bn.Installed = true
	}
	errs.recovered("firewall")
	return true
}

// installRemote puts other nodes' bans into the kernel, before the store
// has them, as install does this node's, and hands their log lines to the
// ban logger; it reports false when the firewall refused them. A ban
// whose prefix the kernel holds already leaves that element as it is: the
// store keeps the longer of the two, and reinstall mends the kernel when
// that is the new one.
func (g *generation) installRemote(ctx context.Context, rb *remoteBatch, errs *rateLog, logs chan<- []banLine) bool {
	if len(rb.bans) == 0 {
		return true
	}
	t := now()
	entries := make([]firewall.Entry, 0, len(rb.bans))
	lines := make([]banLine, 0, len(rb.bans))
	for _, r := range rb.bans {
		b := r.Ban
		if !g.knownJail(b.Jail) {
			continue
		}
		e, ok := entry(b, t)
		if !ok {
			continue
		}
		entries = append(entries, e)
		lines = append(lines, lineOf(b))
	}
	err := g.backend.Add(ctx, entries)
	if err != nil {
		errs.error("firewall", "adding the cluster's bans failed; repairing from the store", "err", err)
		return false
	}
	// Logged once in the kernel (bench: the time of the line is when the
	// ban took effect here).
	logs <- lines
	errs.recovered("firewall")
	return true
}

// reinstall puts bans into the kernel again, with their own ends: other
// nodes' bans that the store took in place of shorter ones of their
// prefixes, which the kernel may still hold with the shorter time.
func (g *generation) reinstall(ctx context.Context, bans []*ban.Ban, errs *rateLog) {
	if len(bans) == 0 {
		return
	}
	list := make([]ban.Ban, len(bans))
	for i, b := range bans {
		list[i] = *b
	}
	entries, _ := g.entries(list, now())
	if err := g.backend.Remove(ctx, entries); err != nil {
		errs.error("firewall", "replacing bans failed; repairing from the store", "err", err)
		g.reconcile(ctx, errs)
		return
	}
	if err := g.backend.Add(ctx, entries); err != nil {
		errs.error("firewall", "replacing bans failed; repairing from the store", "err", err)
		g.reconcile(ctx, errs)
	}
}

// banLine is what the log line of a ban says, copied from the ban: the
// store's writer sets fields of the ban meanwhile.
type banLine struct {
	node        string // the cluster node that made it; "" for this one
	jail        string
	prefix      netip.Prefix
	strikes     int
	reason      string
	origin      string
	start, end  time.Time
	first, last time.Time
}

// lineOf copies what b's log line says.
func lineOf(b *ban.Ban) banLine {
	return banLine{node: b.Node, jail: b.Jail, prefix: b.Prefix, strikes: b.Strikes, reason: b.Reason,
		origin: b.Origin, start: b.Start, end: b.End, first: b.FirstEvent, last: b.LastEvent}
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
			if l.node != "" {
				// Another node's: its webhooks were told there.
				g.log.Info("ban", "jail", l.jail, "ip", ban.IP(l.prefix), "node", l.node, "reason", l.reason,
					"until", l.end.UTC().Format(time.RFC3339))
				continue
			}
			g.log.Info("ban", "jail", l.jail, "ip", ban.IP(l.prefix), "strikes", l.strikes, "reason", l.reason,
				"for", config.FormatDuration(l.end.Sub(l.start)), "first", l.first.Format(time.RFC3339), "last", l.last.Format(time.RFC3339))
			evs = append(evs, notify.Event{Kind: config.NotifyBan, Prefix: l.prefix, Jail: l.jail, Origin: l.origin,
				Start: l.start, Until: l.end, Strikes: l.strikes, Reason: l.reason})
		}
		release()
		if len(evs) > 0 {
			g.notify.Notify(evs...)
		}
	}
}

// lift takes bans the store has just ended as unbanned out of the kernel
// (committer only), logging each with who lifted it; when the firewall
// fails, it is repaired from the store.
func (g *generation) lift(ctx context.Context, ended []ban.Ban) {
	var entries []firewall.Entry
	for _, b := range ended {
		if g.knownJail(b.Jail) {
			entries = append(entries, firewall.Entry{Jail: b.Jail, Prefix: b.Prefix})
		}
		g.log.Info("unban", "jail", b.Jail, "ip", ban.IP(b.Prefix), "by", b.EndedBy)
	}
	if err := g.backend.Remove(ctx, entries); err != nil {
		g.log.Error("removing bans from the firewall failed; repairing from the store", "err", err)
		g.reconcile(ctx, &rateLog{log: g.log, count: g.countError})
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
