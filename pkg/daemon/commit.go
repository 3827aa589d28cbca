package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/store"
)

// commit owns the store's writes and the firewall: it commits each batch,
// then installs its bans; it closes expired bans, checks and repairs the
// firewall, and prunes old rows. It returns when batches is closed (the
// processor's last batch committed).
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
	var retry *batch
	errs := &rateLog{log: g.log}
	for {
		select {
		case b, ok := <-batches:
			if !ok {
				if retry != nil {
					errs.error("store", "the last batch could not be committed; its lines will be read again", "err",
						g.store.Commit(bg, g.toStore(retry)))
				}
				return nil
			}
			if retry != nil {
				retry.merge(b)
				b, retry = retry, nil
			}
			g.apply(bg, b, errs, &retry)
		case fn := <-g.ctl:
			fn(bg)
		case <-floods:
			g.recordFloods(bg, fr, errs)
		case <-expire.C:
			if n, err := g.store.Expire(bg, now()); err != nil {
				errs.error("store", "closing expired bans failed", "err", err)
			} else if n > 0 {
				g.log.Info("bans expired", "count", n)
			}
		case <-check.C:
			ok, err := g.backend.Check(bg)
			if err != nil {
				errs.error("firewall", "checking the firewall failed", "err", err)
			}
			if !ok && err == nil {
				g.log.Warn("the firewall table was changed by someone else; repairing")
				g.reconcile(bg, errs)
			}
		case <-repair:
			if repairTimer == nil {
				repairTimer = time.After(repairDelay)
			}
		case <-repairTimer:
			repairTimer = nil
			g.log.Warn("the firewall table was changed by someone else; repairing")
			g.reconcile(bg, errs)
		case <-prune.C:
			t := now()
			var maxFind time.Duration
			for _, jr := range g.jails {
				maxFind = max(maxFind, jr.memory())
			}
			if _, err := g.store.Prune(bg, t.Add(-maxFind), t.Add(-g.cfg.Daemon.History)); err != nil {
				errs.error("store", "pruning old rows failed", "err", err)
			}
		}
	}
}

// apply commits b, then installs its bans. A batch the store refuses is
// kept (its bans still go to the kernel) and retried with the next one.
func (g *generation) apply(ctx context.Context, b *batch, errs *rateLog, retry **batch) {
	if err := g.store.Commit(ctx, g.toStore(b)); err != nil {
		errs.error("store", "committing failed; the bans still go to the kernel and are committed when the store works again",
			"err", err, "bans", len(b.bans), "strikes", len(b.strikes))
		if len(b.strikes) > retryStrikes {
			b.strikes = b.strikes[len(b.strikes)-retryStrikes:]
		}
		*retry = b
	} else {
		errs.recovered("store")
	}
	if len(b.bans) == 0 {
		return
	}
	t := now()
	entries := make([]firewall.Entry, 0, len(b.bans))
	for _, bn := range b.bans {
		if bn.Installed {
			continue
		}
		e, ok := entry(bn, t)
		if ok {
			entries = append(entries, e)
		}
		g.log.Info("ban", "jail", bn.Jail, "ip", ban.IP(bn.Prefix), "strikes", bn.Strikes, "reason", bn.Reason,
			"for", config.FormatDuration(bn.End.Sub(bn.Start)), "first", bn.FirstEvent.Format(time.RFC3339), "last", bn.LastEvent.Format(time.RFC3339))
	}
	if err := g.backend.Add(ctx, entries); err != nil {
		errs.error("firewall", "adding bans failed; repairing from the store", "err", err)
		g.reconcile(ctx, errs)
		return
	}
	for _, bn := range b.bans {
		bn.Installed = true
	}
	errs.recovered("firewall")
}

// reconcile makes the kernel hold the store's active bans.
func (g *generation) reconcile(ctx context.Context, errs *rateLog) {
	t := now()
	active, err := g.store.Active(ctx, t)
	if err != nil {
		errs.error("store", "reading active bans failed", "err", err)
		return
	}
	entries, _ := g.entries(active, t)
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
	b.lines += later.lines
}

// rateLog logs an error of a component at most once per errorLogEvery, with
// the count of those it held back, and once when the component works again.
type rateLog struct {
	log    *slog.Logger
	last   map[string]time.Time
	held   map[string]int
	failed map[string]bool
}

func (r *rateLog) error(component, msg string, args ...any) {
	if r.last == nil {
		r.last, r.held, r.failed = map[string]time.Time{}, map[string]int{}, map[string]bool{}
	}
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "err" && args[i+1] == nil {
			return
		}
	}
	r.failed[component] = true
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
	if r.failed[component] {
		r.failed[component] = false
		r.log.Info("working again", "component", component)
	}
}
