package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/dnsbl"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/jail"
	"github.com/banwatch/banwatch/pkg/logtime"
	"github.com/banwatch/banwatch/pkg/notify"
	"github.com/banwatch/banwatch/pkg/offline"
	"github.com/banwatch/banwatch/pkg/source"
	"github.com/banwatch/banwatch/pkg/store"
)

// Tuning of the pipeline.
const (
	linesBuffer   = 16                    // batches of lines in flight between sources and the processor
	batchLines    = 8192                  // lines per batch at most, when lines keep coming
	batchAge      = 20 * time.Millisecond // a batch without bans is committed once this old
	releaseAfter  = 100_000               // lines that make a burst, whose memory is given back once quiet
	releaseQuiet  = time.Second           // how quiet the logs must be for that
	sweepEvery    = time.Minute           // jails forget stale strikes
	expireEvery   = time.Minute           // the store closes expired bans
	checkEvery    = 30 * time.Second      // the firewall's table is checked
	pruneEvery    = time.Hour             // old strikes and history are deleted
	repairDelay   = 250 * time.Millisecond
	retryStrikes  = 1_000_000 // strikes kept for a store that fails, at most
	errorLogEvery = time.Minute
)

// jailRun is one running jail: its configuration, filter, window and
// counters. The counters are written by the processor and read by anyone.
type jailRun struct {
	cfg    config.Jail
	filter *filter.Filter
	// matcher matches the lines of the jail's logs (processor only); evs
	// is its results' memory.
	matcher *filter.Matcher
	evs     []event.Event
	jail    *jail.Jail
	ignore  *jail.Ignore
	logs    []string // the logs followed
	// remembersSuccess keeps auth_success events in the store.
	remembersSuccess bool
	resolver         *dnsbl.Resolver         // the jail's DNSBLs, or nil
	looked           map[netip.Addr]struct{} // addresses asked about (processor only)
	log              *slog.Logger

	lines, events, unparsable, old, strikes, bans, trusted atomic.Int64
	tracked                                                atomic.Int64                 // jail.Tracked, set by the processor
	kinds                                                  [event.NumKinds]atomic.Int64 // events by event.Kind.Index
}

// generation is one run of one configuration.
type generation struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *store.Store
	backend firewall.Backend
	poll    bool

	jails    []*jailRun
	byPath   map[string][]*jailRun // exact log path → jails reading it
	patterns map[string][]*jailRun // log pattern → jails reading it
	resolved map[string][]*jailRun // file of a pattern → jails (processor only)
	refs     map[string]time.Time  // file of a pattern → the date in its name (processor only)
	evidence map[string]int        // jail → evidence lines kept per ban
	started  time.Time             // when the generation started
	resumed  map[string]bool       // logs with a stored read position at start

	skipped   atomic.Int64    // lines too long to take
	decisions []jail.Decision // the processor's scratch for a jail's decisions
	files     []statser       // the sources, for status
	// manualIgnore is what banctl ban refuses without --force in the
	// manual jail: [daemon] ignore, loopback and the host's addresses.
	manualIgnore *jail.Ignore

	ctl     chan func(context.Context) // control requests, run by the committer
	marks   chan mark                  // ban marks for the jails, taken by the processor
	procOps chan func(context.Context) // work on the jails, run by the processor
	remote  chan []ban.Strike          // other cluster nodes' strikes (share_strikes), for the processor
	// remoteBans carries other cluster nodes' bans to the committer,
	// which puts them into the kernel at once and the store after.
	remoteBans chan *remoteBatch
	// cluster is the cluster syncer ([cluster] set), told of this node's
	// bans as they reach the kernel; nil otherwise.
	cluster   *clusterSync
	probes    chan func()   // the watchdog's probes, answered by the committer at once
	dnsblHits chan dnsblHit // DNSBL listings, for the processor
	stopped   chan struct{} // closed when the generation has ended

	metrics *metrics // the daemon's, which outlive generations
	retired bool     // its counters were added to the daemon's sums (daemon.mu)
	// built is set once jails and files are made: other goroutines (status,
	// metrics) read them only then.
	built atomic.Bool

	notify  *notify.Notifier // the daemon's webhooks, which outlive generations (nil: none)
	holdLog func() func()    // Options.HoldLog (nil: none)
}

// mark tells a jail that a prefix was banned (until end) or unbanned.
type mark struct {
	jail   string
	prefix netip.Prefix
	end    time.Time
	unmark bool
}

// statser is a source that reports what it reads.
type statser interface {
	Stats() source.FileStats
}

// batch is what the processor hands the committer.
type batch struct {
	positions map[string]source.Position
	strikes   []ban.Strike
	bans      []*ban.Ban
	decided   []time.Time // when the processor made each of bans (for the latency metric)
	lines     int
	started   time.Time
}

func newBatch() *batch {
	return &batch{positions: map[string]source.Position{}}
}

func (b *batch) empty() bool {
	return len(b.positions) == 0 && len(b.strikes) == 0 && len(b.bans) == 0
}

// ripe tells whether b is to be handed to the committer at t: it holds bans
// (installed once committed), or is full, or is batchAge old. What comes
// within batchAge is committed together, so that the commits (a
// transaction each) stay a few dozen a second however the lines come.
func (b *batch) ripe(t time.Time) bool {
	return len(b.bans) > 0 || b.lines >= batchLines || t.Sub(b.started) >= batchAge
}

// run runs the generation until ctx is done; ready is called once it
// follows its logs. It returns an error only when the generation cannot
// start or its pipeline fails.
func (g *generation) run(ctx context.Context, ready func()) error {
	defer close(g.stopped)
	if err := g.build(); err != nil {
		return err
	}
	start := now()
	if err := g.restore(ctx, start); err != nil {
		return err
	}
	g.started = start
	sources, err := g.sources(ctx, start)
	if err != nil {
		return err
	}
	// From here on jails and files are only read: status and metrics may
	// look at them.
	g.built.Store(true)

	lines := make(chan []source.Line, linesBuffer)
	batches := make(chan *batch, 1)
	repair := make(chan struct{}, 1)

	// The processor and committer stop on their own terms (after a final
	// batch), so they are not in the sources' group.
	srcs, srcCtx := errgroup.WithContext(ctx)
	for _, s := range sources {
		srcs.Go(func() error { return g.keepRunning(srcCtx, s, lines) })
	}
	for _, jr := range g.jails {
		if jr.resolver != nil {
			srcs.Go(func() error { return jr.resolver.Run(srcCtx) })
		}
	}
	var pipe errgroup.Group
	pipe.Go(func() error { return g.process(srcCtx, lines, batches) })
	pipe.Go(func() error { return g.commit(ctx, batches, repair) })
	if w, ok := g.backend.(firewall.Watcher); ok {
		srcs.Go(func() error {
			err := w.Watch(srcCtx, func() {
				select {
				case repair <- struct{}{}:
				default:
				}
			})
			if err != nil {
				g.log.Warn("cannot watch the firewall for changes by others; the periodic check remains", "err", err)
			}
			return nil
		})
	}
	ready()
	srcErr := srcs.Wait()
	pipeErr := pipe.Wait()
	g.summary()
	if pipeErr != nil {
		return pipeErr
	}
	if srcErr != nil && ctx.Err() == nil {
		return srcErr
	}
	return nil
}

// build makes the jails of the configuration.
func (g *generation) build() error {
	var err error
	own := ownAddrs(g.log)
	g.manualIgnore = jail.NewIgnore(append(append([]netip.Prefix(nil), g.cfg.Daemon.Ignore...), own...)...)
	g.byPath = map[string][]*jailRun{}
	g.patterns = map[string][]*jailRun{}
	g.resolved = map[string][]*jailRun{}
	g.refs = map[string]time.Time{}
	g.evidence = map[string]int{}
	for _, jc := range g.cfg.Jails {
		if jc.Enabled == config.EnabledFalse {
			g.log.Debug("jail disabled", "jail", jc.Name)
			continue
		}
		f := g.cfg.Filters[jc.Filter]
		if f == nil {
			return fmt.Errorf("daemon: jail %q: no filter %q", jc.Name, jc.Filter)
		}
		ignore := jail.NewIgnore(append(append(append([]netip.Prefix(nil), g.cfg.Daemon.Ignore...), jc.Ignore...), own...)...)
		jr := &jailRun{
			cfg:     jc,
			filter:  f,
			matcher: f.NewMatcher(),
			ignore:  ignore,
			jail:    jail.New(jc.JailConfig(), ignore),
			// Successful logins are kept (as weight-0 strikes) when trust
			// or learning needs them after a restart.
			remembersSuccess: jc.Trust > 0 || jc.Learn.Distinct > 0,
			log:              g.log.With("jail", jc.Name),
		}
		if jr.resolver, err = newResolver(&jc, g); err != nil {
			return err
		}
		jr.looked = map[netip.Addr]struct{}{}
		g.evidence[jc.Name] = jc.Evidence
		present := jc.LogsPresent()
		switch {
		case len(jc.Journal) > 0 && len(present) == 0 && (jc.Enabled == config.EnabledTrue || journalctlFound()):
			// None of its files exists (a system without syslog files):
			// the journal, a log like the files, named by its matches.
			// Never both, so that syslog's copy of the journal in a file
			// does not count each line twice.
			jr.logs = []string{source.JournalName(jc.Journal)}
			present = jr.logs
		case jc.Enabled == config.EnabledTrue || len(present) == 0:
			jr.logs = jc.Logs
		default:
			jr.logs = present
		}
		if len(present) == 0 {
			jr.log.Info("jail waits for its logs", "logs", strings.Join(jc.Logs, " "), "ports", jc.Ports)
		} else {
			jr.log.Info("jail started", "logs", strings.Join(jr.logs, " "), "ports", jc.Ports,
				"max_strikes", jc.MaxStrikes, "find_time", config.FormatDuration(jc.FindTime),
				"ban_time", config.FormatDuration(jc.BanTime))
		}
		for _, p := range jr.logs {
			if !strings.HasPrefix(p, source.JournalPrefix) && config.IsPattern(p) {
				g.patterns[p] = append(g.patterns[p], jr)
			} else {
				g.byPath[p] = append(g.byPath[p], jr)
			}
		}
		g.jails = append(g.jails, jr)
	}
	if len(g.jails) == 0 {
		g.log.Warn("no jail is enabled; banwatchd only keeps the stored bans in place")
	}
	return nil
}

// fwJails lists the jails for the firewall.
func (g *generation) fwJails() []firewall.Jail {
	out := make([]firewall.Jail, 0, len(g.jails)+1)
	for _, jr := range g.jails {
		fj := firewall.Jail{Name: jr.cfg.Name, Ports: jr.cfg.Ports}
		if cl := jr.cfg.ConnLimit; cl != nil {
			fj.ConnLimit = &firewall.ConnLimit{Rate: cl.Rate, Per: cl.Per, Burst: cl.Burst,
				Ban: jr.cfg.ConnLimitBan, BanTimeout: jr.cfg.BanTime}
		}
		out = append(out, fj)
	}
	// Manual bans without a jail cover every port.
	return append(out, firewall.Jail{Name: config.ManualJail})
}

func (g *generation) jailRun(name string) *jailRun {
	for _, jr := range g.jails {
		if jr.cfg.Name == name {
			return jr
		}
	}
	return nil
}

// restore makes the kernel hold the store's active bans, tells the jails
// which addresses are banned, and rebuilds their windows from the stored
// strikes.
func (g *generation) restore(ctx context.Context, t time.Time) error {
	if err := g.backend.Setup(ctx, g.fwJails()); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if n, err := g.store.Expire(ctx, t); err != nil {
		return fmt.Errorf("daemon: %w", err)
	} else if n > 0 {
		g.log.Info("bans that ran out while banwatchd was stopped closed", "count", n)
	}
	active, err := g.store.Active(ctx, t)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	// The time left is counted from now, not from t: the store may have
	// taken seconds (a large database after a crash), and a timeout
	// counted from t would keep each ban in the kernel that much longer
	// than its end.
	entries, orphans := g.entries(active, now())
	if err := g.backend.Reconcile(ctx, entries); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	if orphans > 0 {
		g.log.Warn("active bans of jails that are not running stay in the store but not in the kernel", "count", orphans)
	}
	g.log.Info("bans restored", "count", len(entries), "took", time.Since(t).Round(time.Millisecond))

	// Windows first, then the ban marks: replay decides nothing, and a strike
	// that made a ban was spent on it.
	strikes, err := g.store.Strikes(ctx, t.Add(-g.memory()))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	for i := range strikes {
		s := &strikes[i]
		jr := g.jailRun(s.Jail)
		if jr == nil || s.Time.Before(t.Add(-jr.memory())) {
			continue
		}
		ev := event.Event{Time: s.Time, Addr: s.Addr, Kind: s.Kind}
		// The HELO and user names, for fingerprints, come from the line.
		if m, ok := jr.filter.Match([]byte(s.Line), s.Time); ok {
			ev.HELO, ev.User = m.HELO, m.User
		}
		jr.jail.Replay(&ev)
	}
	if err := g.priorBans(ctx, t); err != nil {
		return err
	}
	for i := range active {
		if jr := g.jailRun(active[i].Jail); jr != nil {
			jr.jail.MarkBanned(active[i].Prefix, active[i].End)
		}
	}
	return nil
}

// entries turns bans into firewall entries with their remaining time at t,
// leaving out bans of jails not running (counted as orphans).
func (g *generation) entries(bans []ban.Ban, t time.Time) (out []firewall.Entry, orphans int) {
	out = make([]firewall.Entry, 0, len(bans))
	for i := range bans {
		b := &bans[i]
		if !g.knownJail(b.Jail) {
			orphans++
			continue
		}
		if e, ok := entry(b, t); ok {
			out = append(out, e)
		}
	}
	return out, orphans
}

// entry is b's firewall entry at t: it ends when the ban does, but never
// later than the ban's own length after t (a clock that jumps back must not
// lengthen a ban). A ban with less than a second left has none.
func entry(b *ban.Ban, t time.Time) (firewall.Entry, bool) {
	end := b.End
	if full := b.End.Sub(b.Start); full > 0 && end.Sub(t) > full {
		end = t.Add(full)
	}
	if b.Remaining(t) < time.Second {
		return firewall.Entry{}, false
	}
	return firewall.Entry{Jail: b.Jail, Prefix: b.Prefix.Masked(), Expires: end}, true
}

// sources makes one source per log path (or pattern).
func (g *generation) sources(ctx context.Context, t time.Time) ([]source.Source, error) {
	positions, err := g.store.Positions(ctx)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	g.resumed = map[string]bool{}
	for p := range positions {
		g.resumed[p] = true
	}
	findOf := func(jrs []*jailRun) time.Duration {
		var d time.Duration
		for _, jr := range jrs {
			d = max(d, jr.cfg.FindTime)
		}
		return d
	}
	var out []source.Source
	paths := make([]string, 0, len(g.byPath))
	for p := range g.byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		start := source.Start{Resume: positions[p], Since: t.Add(-findOf(g.byPath[p]))}
		if strings.HasPrefix(p, source.JournalPrefix) {
			j := source.NewJournal(start, g.log.With("log", p), source.JournalOptions{
				Matches: g.byPath[p][0].cfg.Journal, Directory: g.cfg.Daemon.JournalDirectory,
			})
			g.files = append(g.files, j)
			out = append(out, j)
			continue
		}
		f := source.NewFile(p, start, g.log.With("log", p), g.fileOptions(p))
		g.files = append(g.files, f)
		out = append(out, f)
	}
	pats := make([]string, 0, len(g.patterns))
	for p := range g.patterns {
		pats = append(pats, p)
	}
	sort.Strings(pats)
	for _, p := range pats {
		ps := &patternSource{
			pattern: p, positions: positions,
			log: g.log.With("log", p), newFile: func(path string, start source.Start) *source.File {
				return source.NewFile(path, start, g.log.With("log", path), g.fileOptions(path))
			},
		}
		g.files = append(g.files, ps)
		out = append(out, ps)
	}
	return out, nil
}

func (g *generation) fileOptions(path string) source.FileOptions {
	return source.FileOptions{
		Poll: g.poll,
		ParseTime: func(line []byte) (time.Time, bool) {
			ref := now()
			if r, ok := offline.RefFromName(path, time.Local); ok {
				ref = r
			}
			t, _, ok := logtime.ParsePrefix(line, ref)
			return t, ok
		},
	}
}

// jailsFor returns the jails reading path (processor only).
func (g *generation) jailsFor(path string) []*jailRun {
	if jrs, ok := g.byPath[path]; ok {
		return jrs
	}
	if jrs, ok := g.resolved[path]; ok {
		return jrs
	}
	var jrs []*jailRun
	for p, pj := range g.patterns {
		if ok, _ := filepath.Match(p, path); ok {
			jrs = append(jrs, pj...)
		}
	}
	g.resolved[path] = jrs
	if r, ok := offline.RefFromName(path, time.Local); ok {
		g.refs[path] = r
	}
	return jrs
}

// summary logs what the generation read and did.
func (g *generation) summary() {
	for _, jr := range g.jails {
		jr.log.Info("jail summary", "lines", jr.lines.Load(), "events", jr.events.Load(),
			"unparsable", jr.unparsable.Load(), "before_window", jr.old.Load(), "strikes", jr.strikes.Load(), "bans", jr.bans.Load(),
			"tracked", jr.jail.Tracked())
	}
	g.log.Info("stopped reading", "skipped", g.skipped.Load())
}

// sourceRetry is how long a source that failed waits before it starts again.
const sourceRetry = 10 * time.Second

// keepRunning runs s until ctx is done; a source that fails (its log became
// a directory or a FIFO, say) is logged and started again after a pause, so
// one bad log never stops the daemon or the other logs.
func (g *generation) keepRunning(ctx context.Context, s source.Source, out chan<- []source.Line) error {
	for {
		err := s.Run(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		g.log.Error("a log source failed; trying again", "err", err, "in", sourceRetry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sourceRetry):
		}
	}
}

// memory is the longest any of g's jails remembers an address (see
// jailRun.memory): what the store, and the cluster, must keep of strikes.
func (g *generation) memory() time.Duration {
	var d time.Duration
	for _, jr := range g.jails {
		d = max(d, jr.memory())
	}
	return d
}

// memory is how far back the jail's state reaches: its window, and the
// trust and learning windows when those are on. Stored strikes are kept
// and replayed that far.
func (jr *jailRun) memory() time.Duration {
	d := jr.cfg.FindTime
	if jr.cfg.Trust > 0 {
		d = max(d, jr.cfg.Trust)
	}
	if jr.cfg.Learn.Distinct > 0 {
		d = max(d, jr.cfg.Learn.Window)
	}
	return d
}

// priorBans tells the escalating jails how many bans each address had
// within the history kept.
func (g *generation) priorBans(ctx context.Context, t time.Time) error {
	for _, jr := range g.jails {
		if jr.cfg.Escalate.Factor <= 1 {
			continue
		}
		counts, err := g.store.BanCounts(ctx, jr.cfg.Name, t.Add(-g.cfg.Daemon.History))
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		for a, n := range counts {
			jr.jail.SetPriorBans(a, n)
		}
	}
	return nil
}

// journalctlFound reports whether journalctl can be run: a jail that
// reads the journal with enabled = "auto" runs when it can.
func journalctlFound() bool {
	_, err := exec.LookPath("journalctl")
	return err == nil
}
