package daemon

import (
	"context"
	"fmt"
	bwversion "github.com/banwatch/banwatch/internal/version"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/jail"
	"github.com/banwatch/banwatch/pkg/notify"
	"github.com/banwatch/banwatch/pkg/store"
)

// The daemon answers the control socket.
var _ control.Handler = (*daemon)(nil)

// version is what banctl status and the metrics show: the release (set
// by the Makefile) and the commit, as banwatchd --version prints them.
func version() string {
	return bwversion.String() + " (commit " + bwversion.Commit() + ")"
}

// withGen runs fn on the current generation's committer, which owns the
// store's writes and the firewall.
func (d *daemon) withGen(ctx context.Context, fn func(g *generation, bg context.Context) error) error {
	var err error
	werr := d.onGen(ctx, func(g *generation) chan func(context.Context) { return g.ctl },
		func(g *generation, bg context.Context) { err = fn(g, bg) })
	if werr != nil {
		return werr
	}
	return err
}

// onGen hands fn to the goroutine of the current generation that which
// names (the committer or the processor) and waits until it ran. During a
// reload it waits for the next generation, for up to ten seconds.
func (d *daemon) onGen(ctx context.Context, which func(g *generation) chan func(context.Context), fn func(g *generation, bg context.Context)) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := d.current()
		done := make(chan struct{})
		select {
		case which(g) <- func(bg context.Context) { fn(g, bg); close(done) }:
			<-done
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-g.stopped:
		}
		if time.Now().After(deadline) {
			return control.Errorf(http.StatusServiceUnavailable, "banwatchd is restarting its pipeline; try again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sendMark hands a jail mark to the generation's processor.
func (g *generation) sendMark(m mark) {
	select {
	case g.marks <- m:
	case <-g.stopped:
	}
}

// sendMarkAsync hands a mark to the processor if it can take it now; the
// committer uses it, since it must never wait for the processor (which
// may be waiting for the committer).
func (g *generation) sendMarkAsync(m mark) {
	select {
	case g.marks <- m:
	default:
	}
}

// liveJail is jailRun for the control socket's goroutines: nil until the
// generation has made its jails (during a reload's start), as they may be
// read only from then on.
func (g *generation) liveJail(name string) *jailRun {
	if !g.built.Load() {
		return nil
	}
	return g.jailRun(name)
}

// liveCheckJail is checkJail for the control socket's goroutines.
func (g *generation) liveCheckJail(name string) error {
	if name != "" && name != config.ManualJail && !g.built.Load() {
		return control.Errorf(http.StatusServiceUnavailable, "banwatchd is restarting its pipeline; try again")
	}
	return g.checkJail(name)
}

// knownJail reports whether name is a running jail or the manual jail.
func (g *generation) knownJail(name string) bool {
	return name == config.ManualJail || g.jailRun(name) != nil
}

func (g *generation) jailNames() string {
	names := []string{config.ManualJail}
	for _, jr := range g.jails {
		names = append(names, jr.cfg.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (g *generation) checkJail(name string) error {
	if name != "" && !g.knownJail(name) {
		return control.Errorf(http.StatusNotFound, "no jail %q is running (jails: %s)", name, g.jailNames())
	}
	return nil
}

// Status implements control.Handler.
func (d *daemon) Status(ctx context.Context) (*control.Status, error) {
	g := d.current()
	t := now()
	active, err := d.store.CountActive(ctx, t)
	if err != nil {
		return nil, err
	}
	total, err := d.store.CountAll(ctx)
	if err != nil {
		return nil, err
	}
	st := &control.Status{
		Version: version(), Started: d.started.UTC(), Uptime: t.Sub(d.started).Seconds(),
		Config: g.cfg.Dir, StateDir: g.cfg.Daemon.StateDir, Firewall: g.cfg.Daemon.Firewall, Table: g.cfg.Daemon.Table,
		Skipped: g.skipped.Load(),
	}
	if c := d.cluster; c != nil {
		pending, err := d.store.PendingCount(ctx)
		if err != nil {
			return nil, err
		}
		st.Cluster = &control.ClusterStatus{Node: c.node, ShareStrikes: c.strike, Connected: c.connected.Load(),
			Pending: pending, Sent: c.sent.Load(), Received: c.received.Load(), Cursor: c.cursor.Load()}
	}
	files := map[string]control.LogStatus{}
	var live []statser
	if g.built.Load() {
		live = g.files // made by then, and only read after
	}
	for _, f := range live {
		fs := f.Stats()
		ls := control.LogStatus{Path: fs.Path, Open: fs.Open, Lines: fs.Lines, Skipped: fs.Skipped,
			Offset: fs.Pos.Offset, Inode: fs.Pos.Inode}
		if p, ok := f.(*patternSource); ok {
			ls.Path, ls.File = p.pattern, fs.Path
			if fs.Path == p.pattern {
				ls.File = ""
			}
		}
		files[ls.Path] = ls
	}
	for _, jc := range g.cfg.Jails {
		js := control.JailStatus{Name: jc.Name, Enabled: string(jc.Enabled), Active: active[jc.Name], Total: total[jc.Name]}
		if jr := g.liveJail(jc.Name); jr != nil {
			js.Running = true
			js.Filter, js.Ports, js.MaxStrikes = jc.Filter, jc.Ports, jc.MaxStrikes
			js.FindTime, js.BanTime = config.FormatDuration(jc.FindTime), config.FormatDuration(jc.BanTime)
			for _, p := range jr.logs {
				if ls, ok := files[p]; ok {
					js.Logs = append(js.Logs, ls)
				}
			}
			js.Lines, js.Events, js.Unparsable = jr.lines.Load(), jr.events.Load(), jr.unparsable.Load()
			js.Strikes, js.BansRun, js.Forgiven = jr.strikes.Load(), jr.bans.Load(), jr.trusted.Load()
			js.Tracked = jr.tracked.Load()
			if jr.resolver != nil {
				rs := jr.resolver.Stats()
				js.DNSBL = &control.DNSBLStatus{Lists: jc.DNSBL, Lookups: rs.Lookups, CacheHits: rs.CacheHits,
					Listed: rs.Listed, NotListed: rs.NotListed, Refused: rs.Refused, Errors: rs.Errors, Dropped: rs.Dropped}
			}
			if cl := jc.ConnLimit; cl != nil {
				js.ConnLimit = fmt.Sprintf("%s burst %d", config.FormatRate(cl.Rate, cl.Per), cl.Burst)
				if jc.ConnLimitBan {
					js.ConnLimit += ", bans"
				}
			}
		}
		st.Jails = append(st.Jails, js)
	}
	st.Jails = append(st.Jails, control.JailStatus{Name: config.ManualJail, Enabled: "true", Running: true,
		Active: active[config.ManualJail], Total: total[config.ManualJail]})
	return st, nil
}

// Active implements control.Handler: the store's active bans, oldest first.
func (d *daemon) Active(ctx context.Context, jailName string, p netip.Prefix, fn func(*ban.Ban) error) error {
	if err := d.current().liveCheckJail(jailName); err != nil {
		if _, ok := d.activeJails(ctx)[jailName]; !ok {
			return err
		}
	}
	bans, err := d.store.Active(ctx, now())
	if err != nil {
		return err
	}
	slices.SortFunc(bans, func(a, b ban.Ban) int { return a.Start.Compare(b.Start) })
	for i := range bans {
		b := &bans[i]
		if jailName != "" && b.Jail != jailName || p.IsValid() && !b.Prefix.Overlaps(p) {
			continue
		}
		d.nameNode(b)
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// activeJails lists the jails with active bans (also jails no longer
// configured), so that their bans can still be listed and lifted.
func (d *daemon) activeJails(ctx context.Context) map[string]int {
	m, _ := d.store.CountActive(ctx, now())
	return m
}

// History implements control.Handler.
func (d *daemon) History(ctx context.Context, q control.HistoryQuery, fn func(*ban.Ban) error) error {
	if c := d.cluster; c != nil {
		// In cluster mode, the cluster's history: every node's bans.
		bans, err := c.history(ctx, q)
		if err == nil {
			for i := range bans {
				if err := fn(&bans[i]); err != nil {
					return err
				}
			}
			return nil
		}
		c.log.Warn("the cluster's history cannot be read; showing this node's", "err", err)
	}
	bans, err := d.store.History(ctx, store.Query{Prefix: q.Prefix, Jail: q.Jail, Since: q.Since, Limit: q.Limit})
	if err != nil {
		return err
	}
	for i := range bans {
		d.nameNode(&bans[i])
		if err := fn(&bans[i]); err != nil {
			return err
		}
	}
	return nil
}

// nameNode names this node as the maker of its own bans in cluster mode.
func (d *daemon) nameNode(b *ban.Ban) {
	if d.cluster != nil && b.Node == "" {
		b.Node = d.cluster.node
	}
}

var loopback = jail.NewIgnore()

// Ban implements control.Handler: a manual ban goes the way of a jail's,
// store first, then the kernel.
func (d *daemon) Ban(ctx context.Context, req control.BanRequest, peer control.Peer) ([]ban.Ban, error) {
	p, err := ban.ParsePrefix(req.IP)
	if err != nil {
		return nil, control.Errorf(http.StatusBadRequest, "ip: %v", err)
	}
	if loopback.Overlaps(p) {
		return nil, control.Errorf(http.StatusConflict, "%s is or holds a loopback address: banwatch never bans those", p)
	}
	var out ban.Ban
	err = d.withGen(ctx, func(g *generation, bg context.Context) error {
		jailName := req.Jail
		if jailName == "" {
			jailName = config.ManualJail
		}
		if err := g.checkJail(jailName); err != nil {
			return err
		}
		dur := config.DefaultBanTime
		if jr := g.jailRun(jailName); jr != nil {
			dur = jr.cfg.BanTime
		}
		if req.For != "" {
			if dur, err = config.ParseDuration(req.For); err != nil || dur < time.Second {
				return control.Errorf(http.StatusBadRequest, "for: %q: want a duration of a second or more: 30m, 12h, 7d", req.For)
			}
		}
		if !req.Force {
			if why := g.ignoredBy(jailName, p); why != "" {
				return control.Errorf(http.StatusConflict, "%s is not banned: %s; use --force to ban it anyway", p, why)
			}
		}
		reason := req.Reason
		if reason == "" {
			reason = "manual ban by " + peer.String()
		}
		t := now()
		b := &ban.Ban{Prefix: p, Jail: jailName, Origin: ban.OriginManual, Start: t, End: t.Add(dur),
			Reason: reason, FirstEvent: t, LastEvent: t, Evidence: []string{}}
		if err := d.store.Commit(bg, store.Batch{Bans: []*ban.Ban{b}}); err != nil {
			return err
		}
		e, _ := entry(b, t)
		if err := g.backend.Add(bg, []firewall.Entry{e}); err != nil {
			return fmt.Errorf("the ban is stored but the firewall refused it (it is retried at the next repair): %w", err)
		}
		g.log.Info("ban", "jail", jailName, "ip", ban.IP(p), "reason", reason, "for", config.FormatDuration(dur), "by", peer.String())
		out = *b
		return nil
	})
	if err != nil {
		return nil, err
	}
	if g := d.current(); g.liveJail(out.Jail) != nil {
		g.sendMark(mark{jail: out.Jail, prefix: out.Prefix, end: out.End})
	}
	d.notifier().Notify(notifyEvent(config.NotifyBan, &out, peer.String()))
	return []ban.Ban{out}, nil
}

// BulkBan implements control.Handler: each entry is checked as a manual
// ban is, plus against the active bans (an entry whose prefix is banned in
// its jail as long or longer is refused, so that an import run twice
// changes nothing); the entries that pass are stored in one transaction,
// then reach the kernel in one batch.
func (d *daemon) BulkBan(ctx context.Context, req control.BulkBanRequest, peer control.Peer) ([]ban.Ban, []control.Refusal, error) {
	var refused []control.Refusal
	refuse := func(i int, jailName, code, format string, args ...any) {
		refused = append(refused, control.Refusal{Index: i, IP: req.Bans[i].IP, Jail: jailName, Code: code, Reason: fmt.Sprintf(format, args...)})
	}
	jailOf := func(e *control.BulkBan) string {
		if e.Jail == "" {
			return config.ManualJail
		}
		return e.Jail
	}
	// What needs no generation is checked first.
	prefixes := make([]netip.Prefix, len(req.Bans))
	durs := make([]time.Duration, len(req.Bans))
	pass := make([]bool, len(req.Bans))
	for i := range req.Bans {
		e := &req.Bans[i]
		p, err := ban.ParsePrefix(e.IP)
		switch {
		case err != nil:
			refuse(i, jailOf(e), control.RefusedInvalid, "ip: %v", err)
			continue
		case loopback.Overlaps(p):
			refuse(i, jailOf(e), control.RefusedLoopback, "%s is or holds a loopback address: banwatch never bans those", p)
			continue
		case !e.Until.IsZero() && e.For != "":
			refuse(i, jailOf(e), control.RefusedInvalid, "for and until exclude each other")
			continue
		case e.For != "":
			if durs[i], err = config.ParseDuration(e.For); err != nil || durs[i] < time.Second {
				refuse(i, jailOf(e), control.RefusedInvalid, "for: %q: want a duration of a second or more: 30m, 12h, 7d", e.For)
				continue
			}
		}
		prefixes[i], pass[i] = p, true
	}
	var made []ban.Ban
	err := d.withGen(ctx, func(g *generation, bg context.Context) error {
		t := now()
		type key struct {
			p    netip.Prefix
			jail string
		}
		longest := map[key]time.Time{}
		if slices.Contains(pass, true) {
			active, err := d.store.Active(bg, t)
			if err != nil {
				return err
			}
			for i := range active {
				k := key{active[i].Prefix, active[i].Jail}
				if active[i].End.After(longest[k]) {
					longest[k] = active[i].End
				}
			}
		}
		seen := map[key]bool{}
		var bans []*ban.Ban
		for i := range req.Bans {
			if !pass[i] {
				continue
			}
			e, p := &req.Bans[i], prefixes[i]
			jailName := jailOf(e)
			if err := g.checkJail(jailName); err != nil {
				refuse(i, jailName, control.RefusedUnknownJail, "%v", err)
				continue
			}
			end := t.Add(durs[i])
			switch {
			case !e.Until.IsZero():
				if e.Until.Sub(t) < time.Second {
					refuse(i, jailName, control.RefusedInvalid, "until %s: not a second ahead", e.Until.UTC().Format(time.RFC3339))
					continue
				}
				end = e.Until
			case e.For == "":
				end = t.Add(config.DefaultBanTime)
				if jr := g.jailRun(jailName); jr != nil {
					end = t.Add(jr.cfg.BanTime)
				}
			}
			if !req.Force {
				if why := g.ignoredBy(jailName, p); why != "" {
					refuse(i, jailName, control.RefusedIgnored, "%s is not banned: %s", p, why)
					continue
				}
			}
			k := key{p, jailName}
			if seen[k] {
				refuse(i, jailName, control.RefusedDuplicate, "%s is listed twice for jail %s", p, jailName)
				continue
			}
			seen[k] = true
			if until, ok := longest[k]; ok && !until.Before(end) {
				refuse(i, jailName, control.RefusedBanned, "%s is already banned in jail %s until %s", p, jailName, until.UTC().Format(time.RFC3339))
				continue
			}
			reason := e.Reason
			if reason == "" {
				reason = "manual ban by " + peer.String()
			}
			bans = append(bans, &ban.Ban{Prefix: p, Jail: jailName, Origin: ban.OriginManual, Start: t, End: end,
				Reason: reason, FirstEvent: t, LastEvent: t, Evidence: []string{}})
		}
		made = make([]ban.Ban, 0, len(bans))
		if req.DryRun || len(bans) == 0 {
			for _, b := range bans {
				made = append(made, *b)
			}
			return nil
		}
		if err := d.store.Commit(bg, store.Batch{Bans: bans}); err != nil {
			return err
		}
		entries := make([]firewall.Entry, 0, len(bans))
		for _, b := range bans {
			if e, ok := entry(b, t); ok {
				entries = append(entries, e)
			}
			made = append(made, *b)
		}
		if err := g.backend.Add(bg, entries); err != nil {
			return fmt.Errorf("the bans are stored but the firewall refused them (they are retried at the next repair): %w", err)
		}
		g.log.Info("bulk ban", "bans", len(bans), "refused", len(refused), "by", peer.String(), "took", time.Since(t).Round(time.Millisecond))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(refused, func(a, b control.Refusal) int { return a.Index - b.Index })
	if !req.DryRun && len(made) > 0 {
		evs := make([]notify.Event, len(made))
		for i := range made {
			evs[i] = notifyEvent(config.NotifyBan, &made[i], peer.String())
		}
		d.notifier().Notify(evs...) // a whole import is one message (or a few)
		// The jails learn the addresses are banned, all in one visit.
		err := d.inProcessor(ctx, func(g *generation) {
			for i := range made {
				if jr := g.jailRun(made[i].Jail); jr != nil {
					jr.jail.MarkBanned(made[i].Prefix, made[i].End)
				}
			}
		})
		if err != nil {
			g := d.current()
			g.log.Warn("bulk ban: the jails were not told of the new bans; they still count strikes of those addresses", "err", err)
		}
	}
	return made, refused, nil
}

// ignoredBy says why p may not be banned in jailName without --force, or "".
func (g *generation) ignoredBy(jailName string, p netip.Prefix) string {
	var ig *jail.Ignore
	if jr := g.jailRun(jailName); jr != nil {
		ig = jr.ignore
	} else {
		ig = g.manualIgnore
	}
	for _, q := range ig.Prefixes() {
		if q.Overlaps(p) {
			return fmt.Sprintf("it overlaps %s, which is on the ignore list (the [daemon] or jail ignore key, or an address of this host)", q)
		}
	}
	return ""
}

// Unban implements control.Handler: the store first, then the kernel.
func (d *daemon) Unban(ctx context.Context, req control.UnbanRequest, peer control.Peer) ([]ban.Ban, error) {
	var p netip.Prefix
	switch {
	case req.All && req.IP != "":
		return nil, control.Errorf(http.StatusBadRequest, "all: give either an address or all, not both")
	case !req.All:
		var err error
		if p, err = ban.ParsePrefix(req.IP); err != nil {
			return nil, control.Errorf(http.StatusBadRequest, "ip: %v", err)
		}
	}
	if req.Jail != "" && req.AllJails {
		return nil, control.Errorf(http.StatusBadRequest, "jail and all_jails exclude each other")
	}
	var ended []ban.Ban
	err := d.withGen(ctx, func(g *generation, bg context.Context) error {
		t := now()
		if req.Jail != "" {
			if err := g.checkJail(req.Jail); err != nil {
				if _, ok := d.activeJails(bg)[req.Jail]; !ok {
					return err
				}
			}
		}
		var err error
		if req.All {
			ended, err = d.store.UnbanAll(bg, req.Jail, t, peer.String())
		} else {
			if req.Jail == "" && !req.AllJails {
				if err := d.oneJail(bg, p, t); err != nil {
					return err
				}
			}
			ended, err = d.store.Unban(bg, p, req.Jail, t, peer.String())
		}
		if err != nil {
			return err
		}
		if c := d.cluster; c != nil && len(ended) > 0 {
			c.unbanQueued.Store(true) // in the outbox: sent before the bans made after it
		}
		if len(ended) == 0 && !req.All {
			return control.Errorf(http.StatusNotFound, "%s has no active ban%s", p, inJail(req.Jail))
		}
		g.lift(bg, ended)
		return nil
	})
	if err != nil {
		return nil, err
	}
	g := d.current()
	evs := make([]notify.Event, 0, len(ended))
	for i, b := range ended {
		if g.liveJail(b.Jail) != nil {
			g.sendMark(mark{jail: b.Jail, prefix: b.Prefix, unmark: true})
		}
		evs = append(evs, notifyEvent(config.NotifyUnban, &ended[i], peer.String()))
	}
	d.notifier().Notify(evs...)
	return ended, nil
}

// notifyEvent is what the notifier is told of b (a copy).
func notifyEvent(kind string, b *ban.Ban, by string) notify.Event {
	return notify.Event{Kind: kind, Prefix: b.Prefix, Jail: b.Jail, Origin: b.Origin, Start: b.Start, Until: b.End,
		Strikes: b.Strikes, Reason: b.Reason, By: by}
}

// oneJail refuses an unban without a jail when p is banned in several.
func (d *daemon) oneJail(ctx context.Context, p netip.Prefix, t time.Time) error {
	bans, err := d.store.History(ctx, store.Query{Prefix: p})
	if err != nil {
		return err
	}
	var jails []string
	for _, b := range bans {
		if b.Prefix == p && b.Ended == ban.EndActive && b.End.After(t) {
			jails = append(jails, b.Jail)
		}
	}
	if len(jails) > 1 {
		sort.Strings(jails)
		return control.Errorf(http.StatusConflict, "%s is banned in %s: name one with --jail, or use --all-jails", p, strings.Join(jails, ", "))
	}
	return nil
}

func inJail(j string) string {
	if j == "" {
		return ""
	}
	return " in jail " + j
}

// Reload implements control.Handler.
func (d *daemon) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case d.reloads <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		if err != nil {
			return control.Errorf(http.StatusUnprocessableEntity, "%v", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inProcessor runs fn on the processor, which owns the jails, and waits
// for it.
func (d *daemon) inProcessor(ctx context.Context, fn func(g *generation)) error {
	return d.onGen(ctx, func(g *generation) chan func(context.Context) { return g.procOps },
		func(g *generation, _ context.Context) { fn(g) })
}

// Fingerprints implements control.Handler: the learned fingerprints in
// force, per jail.
func (d *daemon) Fingerprints(ctx context.Context, jailName string) ([]control.Fingerprint, error) {
	var out []control.Fingerprint
	err := d.inProcessor(ctx, func(g *generation) {
		t := now()
		for _, jr := range g.jails {
			if jailName != "" && jr.cfg.Name != jailName {
				continue
			}
			for _, fp := range jr.jail.Fingerprints(t.UnixNano()) {
				out = append(out, control.Fingerprint{Jail: jr.cfg.Name, Value: fp.Value, Until: time.Unix(0, fp.Until).UTC()})
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Jail != out[j].Jail {
			return out[i].Jail < out[j].Jail
		}
		return out[i].Value < out[j].Value
	})
	return out, err
}

// Forget implements control.Handler: drops a learned fingerprint (in jail,
// or every jail) and keeps it from being learned again.
func (d *daemon) Forget(ctx context.Context, value, jailName string, peer control.Peer) ([]control.Fingerprint, error) {
	if strings.TrimSpace(value) == "" {
		return nil, control.Errorf(http.StatusBadRequest, "value: say which HELO or user name to forget")
	}
	if err := d.current().liveCheckJail(jailName); err != nil {
		return nil, err
	}
	var out []control.Fingerprint
	err := d.inProcessor(ctx, func(g *generation) {
		t := now()
		for _, jr := range g.jails {
			if jailName != "" && jr.cfg.Name != jailName {
				continue
			}
			if jr.jail.Forget(value, t.UnixNano()) {
				out = append(out, control.Fingerprint{Jail: jr.cfg.Name, Value: value})
				g.log.Info("fingerprint forgotten", "jail", jr.cfg.Name, "value", value, "by", peer.String())
			}
		}
	})
	if err == nil && len(out) == 0 {
		return nil, control.Errorf(http.StatusNotFound, "no learned fingerprint %q%s (it will not be learned from now on)", value, inJail(jailName))
	}
	return out, err
}
