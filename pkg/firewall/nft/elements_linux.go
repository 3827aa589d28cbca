//go:build linux

package nft

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

// ready checks that Setup has run and ctx is live.
func (b *Backend) ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.jails == nil {
		return errors.New("Setup has not been called")
	}
	return nil
}

// Add bans the entries. An address or prefix already banned gets the new
// timeout (the last one, if an entry appears twice). A timeout of 0 bans
// without expiry; entries with a negative timeout are skipped. Entries are
// sent in batches that fit the kernel's limits; if one fails, later ones
// are not sent, the error is returned, and Check reports false until the
// next Reconcile.
func (b *Backend) Add(ctx context.Context, entries []firewall.Entry) (err error) {
	defer func() { err = explain(err) }()
	if err := b.ready(ctx); err != nil {
		return fmt.Errorf("nft: add: %w", err)
	}
	now := time.Now()
	byJail, skipped, err := b.collect(entries, now, collectOpts{merge: lastWins})
	if err != nil {
		return fmt.Errorf("nft: add: %w", err)
	}
	var seqs []iter.Seq[elemGroup]
	var touched []netRef
	for jail, es := range byJail {
		st := b.state[jail]
		for f := range 2 {
			seqs = append(seqs, b.groups(st.sets[addrKinds[f]], opRefresh, addrUnits(es.addrs[f], wallClock)))
			for p, exp := range es.nets[f] {
				st.nets[f].want[p] = exp
			}
			if len(es.nets[f]) > 0 {
				touched = append(touched, netRef{st, f})
			}
		}
	}
	if err := b.apply(ctx, "add", seqs, touched, now); err != nil {
		return err
	}
	b.logEntries("add", len(entries)-skipped, byJail, true)
	return nil
}

// Remove unbans the entries; entries not banned are ignored, and so are
// timeouts. Single addresses are removed from the jail's flood sets too
// (see Floods), so that unbanning a source the kernel banned for going over
// a connection limit lifts that ban.
func (b *Backend) Remove(ctx context.Context, entries []firewall.Entry) (err error) {
	defer func() { err = explain(err) }()
	if err := b.ready(ctx); err != nil {
		return fmt.Errorf("nft: remove: %w", err)
	}
	now := time.Now()
	byJail, _, err := b.collect(entries, now, collectOpts{merge: lastWins, ignoreTimeout: true})
	if err != nil {
		return fmt.Errorf("nft: remove: %w", err)
	}
	var seqs []iter.Seq[elemGroup]
	var touched []netRef
	for jail, es := range byJail {
		st := b.state[jail]
		for f := range 2 {
			seqs = append(seqs, b.groups(st.sets[addrKinds[f]], opDel, addrUnits(es.addrs[f], wallClock)))
			if flood := st.conn[floodKinds[f]]; flood != nil {
				seqs = append(seqs, b.groups(flood, opDel, addrUnits(es.addrs[f], wallClock)))
			}
			for p := range es.nets[f] {
				delete(st.nets[f].want, p)
			}
			if len(es.nets[f]) > 0 {
				touched = append(touched, netRef{st, f})
			}
		}
	}
	if err := b.apply(ctx, "remove", seqs, touched, now); err != nil {
		return err
	}
	b.logEntries("remove", len(entries), byJail, false)
	return nil
}

// netRef names one prefix set of a jail: family f of st.
type netRef struct {
	st *jailState
	f  int
}

// apply sends the address groups and the prefix changes of the touched
// prefix sets, and records their new covers on success. On failure Check
// reports false until the next Reconcile.
func (b *Backend) apply(ctx context.Context, what string, seqs []iter.Seq[elemGroup], touched []netRef, now time.Time) error {
	nexts := make([]map[netip.Prefix]int64, len(touched))
	for i, r := range touched {
		d := r.st.nets[r.f].plan(now.UnixNano())
		nexts[i] = d.next
		if !d.empty() {
			seqs = append(seqs, b.netGroups(r.st, r.f, d, now.UnixNano()))
		}
	}
	if err := b.send(ctx, what, concat(seqs...)); err != nil {
		b.broken = true
		return fmt.Errorf("nft: %w", err)
	}
	for i, r := range touched {
		r.st.nets[r.f].have = nexts[i]
	}
	return nil
}

// netGroups turns a prefix diff into element groups: deletions first, then
// refreshes, then additions. When small, they are packed into one group,
// so that a prefix that is split or merged never leaves a gap between two
// transactions.
func (b *Backend) netGroups(st *jailState, f int, d netDiff, now int64) iter.Seq[elemGroup] {
	set := st.sets[netKinds[f]]
	del := make(map[netip.Prefix]int64, len(d.del))
	for _, p := range d.del {
		del[p] = never
	}
	gs := slices.Collect(concat(
		b.groups(set, opDel, netUnits(del, wallClock)),
		b.groups(set, opRefresh, netUnits(d.refresh, wallClock)),
		b.groups(set, opAdd, netUnits(d.add, wallClock)),
	))
	var merged elemGroup
	for _, g := range gs {
		merged = append(merged, g...)
	}
	if merged.bytes() <= b.batchLimit() {
		return slices.Values([]elemGroup{merged})
	}
	return slices.Values(gs)
}

// logEntries logs a change at Debug: the count with a few entries, and each
// entry. (The daemon logs bans itself; the backend's Info lines are for
// Setup and Reconcile.)
func (b *Backend) logEntries(what string, n int, byJail map[string]*entrySet, expiries bool) {
	if !b.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	var sample []string
	for jail, es := range byJail {
		for f := range 2 {
			for _, a := range es.addrs[f] {
				sample = b.logEntry(what, jail, netip.PrefixFrom(a.addr, a.addr.BitLen()), a.exp, expiries, sample)
			}
			for p, exp := range es.nets[f] {
				sample = b.logEntry(what, jail, p, exp, expiries, sample)
			}
		}
	}
	b.log.Debug("nftables "+what, "entries", n, "jails", len(byJail), "sample", sample)
}

// logSample is how many entries the summary line shows.
const logSample = 3

// logEntry logs one entry and appends it to a short sample.
func (b *Backend) logEntry(what, jail string, p netip.Prefix, exp int64, expiries bool, sample []string) []string {
	if len(sample) < logSample {
		sample = append(sample, jail+":"+p.String())
	}
	if expiries {
		b.log.Debug("nftables "+what+" entry", "jail", jail, "prefix", p, "expires", expiryString(exp))
	} else {
		b.log.Debug("nftables "+what+" entry", "jail", jail, "prefix", p)
	}
	return sample
}

// expiryString formats an expiry for the log.
func expiryString(exp int64) string {
	if exp == never {
		return "never"
	}
	return time.Unix(0, exp).UTC().Format(time.RFC3339)
}
