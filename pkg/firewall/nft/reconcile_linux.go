//go:build linux

package nft

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/google/nftables"
)

// Reconcile makes the kernel hold exactly the given entries. It fills a
// fresh generation of sets (in batches), then in one transaction points the
// rules at them and deletes every other set in the table, so packets see
// either the old bans or the new ones and never none. It recreates the table
// and chain if they are gone. Connection-limit sets (meters and flood sets)
// are not part of the entries: they are kept as they are, or recreated
// empty if they are gone. Entries of jails not given to Setup are
// skipped with a warning; a prefix given twice gets the longer timeout.
func (b *Backend) Reconcile(ctx context.Context, entries []firewall.Entry) (err error) {
	defer func() { err = explain(err) }()
	if err := b.ready(ctx); err != nil {
		return fmt.Errorf("nft: reconcile: %w", err)
	}
	start := time.Now()
	byJail, skipped, err := b.collect(entries, start, collectOpts{merge: latest, skipUnknown: true})
	if err != nil {
		return fmt.Errorf("nft: reconcile: %w", err)
	}
	if skipped > 0 {
		b.log.Warn("reconcile skipped entries of unknown jails or already expired", "skipped", skipped)
	}
	gen := b.gen + 1
	next := make(map[string]*jailState, len(b.jails))
	for _, j := range b.jails {
		next[j.Name] = b.newJailState(j, gen)
	}
	if err := b.createSets(next); err != nil {
		return fmt.Errorf("nft: reconcile: %w", err)
	}
	b.gen = gen
	if err := b.fill(ctx, next, byJail, start); err != nil {
		b.dropSets(next)
		return fmt.Errorf("nft: reconcile: %w", err)
	}
	if err := b.swap(next); err != nil {
		b.dropSets(next)
		return fmt.Errorf("nft: reconcile: %w", err)
	}
	b.state, b.broken, b.stale = next, false, false
	b.log.Info("nftables reconciled", "entries", len(entries)-skipped, "generation", gen,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// createSets creates the table, the chain and the given (fresh) sets in one
// transaction.
func (b *Backend) createSets(states map[string]*jailState) error {
	c, err := b.connection()
	if err != nil {
		return err
	}
	c.AddTable(b.table)
	c.AddChain(b.chain)
	for _, st := range states {
		for _, s := range st.sets {
			if err := c.AddSet(s, nil); err != nil {
				return fmt.Errorf("add set %s: %w", s.Name, err)
			}
		}
	}
	return b.flush("create sets")
}

// dropSets deletes the given sets, best effort, after a failed Reconcile.
// Whatever is left is deleted by the next Setup or Reconcile.
func (b *Backend) dropSets(states map[string]*jailState) {
	existing, err := b.listSets()
	if err != nil {
		return
	}
	c, err := b.connection()
	if err != nil {
		return
	}
	for _, st := range states {
		for _, s := range st.sets {
			if _, ok := existing[s.Name]; ok {
				c.DelSet(s)
			}
		}
	}
	if err := b.flush("drop sets"); err != nil {
		b.log.Warn("could not delete sets of a failed reconcile", "err", err)
	}
}

// fill loads the entries into the fresh sets and sets up their prefix
// models.
func (b *Backend) fill(ctx context.Context, states map[string]*jailState, byJail map[string]*entrySet, now time.Time) error {
	var seqs []iter.Seq[elemGroup]
	for jail, es := range byJail {
		st := states[jail]
		for f := range 2 {
			seqs = append(seqs,
				b.groups(st.sets[addrKinds[f]], opAdd, addrUnits(es.addrs[f], wallClock)),
				b.fillNets(st, f, es.nets[f], now.UnixNano()))
		}
	}
	return b.send(ctx, "reconcile", concat(seqs...))
}

// fillNets records the wanted prefixes of a fresh set and returns the
// groups that load their cover. The cover is recorded as installed at once:
// if loading fails, the sets are dropped anyway.
func (b *Backend) fillNets(st *jailState, f int, want map[netip.Prefix]int64, now int64) iter.Seq[elemGroup] {
	ns := st.nets[f]
	ns.want = maps.Clone(want)
	d := ns.plan(now)
	ns.have = d.next
	return b.groups(st.sets[netKinds[f]], opAdd, netUnits(d.next, wallClock))
}

// swap points the rules at the fresh sets and deletes all other sets in one
// transaction. It refuses if a fresh set has vanished meanwhile (someone
// flushed the ruleset), rather than swap in an empty one.
func (b *Backend) swap(next map[string]*jailState) error {
	existing, err := b.listSets()
	if err != nil {
		return err
	}
	for _, st := range next {
		for _, s := range st.sets {
			if _, ok := existing[s.Name]; !ok {
				return fmt.Errorf("set %s vanished while being filled", s.Name)
			}
		}
	}
	return b.commitLayout(b.jails, next, existing, nil)
}

// probe finds out once whether re-adding an existing element replaces its
// timeout (Linux 6.12 and later) or is ignored (earlier kernels), using a
// scratch set holding one element, which is read back and deleted.
func (b *Backend) probe() error {
	if b.probed {
		return nil
	}
	c, err := b.connection()
	if err != nil {
		return err
	}
	set := &nftables.Set{Table: b.table, Name: "probe", KeyType: nftables.TypeIPAddr, HasTimeout: true}
	key := netip.MustParseAddr("192.0.2.1").AsSlice()
	c.AddTable(b.table)
	if err := c.AddSet(set, []nftables.SetElement{{Key: key, Timeout: time.Hour}}); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := b.flush("probe"); err != nil {
		return err
	}
	native, err := b.probeRefresh(set, key)
	if c, cerr := b.connection(); cerr == nil {
		c.DelSet(set)
		if ferr := b.flush("probe cleanup"); err == nil {
			err = ferr
		}
	}
	if err != nil {
		return err
	}
	b.nativeRefresh, b.probed = native, true
	b.log.Info("nftables element timeout refresh", "native", native)
	return nil
}

// probeRefresh re-adds the probe element with a longer timeout and reads
// back whether the kernel took it.
func (b *Backend) probeRefresh(set *nftables.Set, key []byte) (bool, error) {
	c, err := b.connection()
	if err != nil {
		return false, err
	}
	if err := c.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: 2 * time.Hour}}); err != nil {
		return false, fmt.Errorf("probe: %w", err)
	}
	if err := b.flush("probe"); err != nil {
		return false, err
	}
	if c, err = b.connection(); err != nil {
		return false, err
	}
	elems, err := c.GetSetElements(set)
	if err != nil {
		b.resetConn()
		return false, fmt.Errorf("probe: %w", err)
	}
	return len(elems) == 1 && elems[0].Timeout == 2*time.Hour, nil
}
