package daemon

import (
	"context"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/store"
)

// floodEvery is how often the kernel's connection-limit bans are read.
const floodEvery = 5 * time.Second

// recordFloods stores the sources the kernel banned for flooding a jail's
// ports (conn_limit_ban) that the store does not know yet, so that banctl
// list and history show them (committer only).
func (g *generation) recordFloods(ctx context.Context, fr firewall.FloodReporter, errs *rateLog) {
	entries, err := fr.Floods(ctx)
	if err != nil {
		errs.error("firewall", "reading the connection-limit bans failed", "err", err)
		return
	}
	t := now()
	var bans []*ban.Ban
	for _, e := range entries {
		jr := g.jailRun(e.Jail)
		if jr == nil || jr.cfg.ConnLimit == nil {
			continue
		}
		known, err := g.store.History(ctx, store.Query{Prefix: e.Prefix, Jail: e.Jail, Limit: 1})
		if err != nil {
			errs.error("store", "reading history failed", "err", err)
			return
		}
		if len(known) > 0 && known[0].Prefix == e.Prefix && known[0].Ended == ban.EndActive && known[0].End.After(t) {
			continue
		}
		cl := jr.cfg.ConnLimit
		end := e.Expires
		if end.IsZero() {
			end = t.Add(jr.cfg.BanTime)
		}
		start := end.Add(-jr.cfg.BanTime)
		if start.After(t) {
			start = t
		}
		bans = append(bans, &ban.Ban{Prefix: e.Prefix, Jail: e.Jail, Origin: ban.OriginConnLimit,
			Start: start, End: end, FirstEvent: start, LastEvent: start, Evidence: []string{},
			Reason: "conn_limit: over " + config.FormatRate(cl.Rate, cl.Per)})
	}
	if len(bans) == 0 {
		return
	}
	if err := g.store.Commit(ctx, store.Batch{Bans: bans}); err != nil {
		errs.error("store", "recording connection-limit bans failed", "err", err)
		return
	}
	for _, b := range bans {
		g.log.Info("ban", "jail", b.Jail, "ip", ban.IP(b.Prefix), "reason", b.Reason, "for", config.FormatDuration(b.End.Sub(t).Round(time.Second)))
		g.sendMarkAsync(mark{jail: b.Jail, prefix: b.Prefix, end: b.End})
	}
}
