package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/cluster"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/store"
)

// Cluster mode ([cluster] in banwatch.toml): the store's outbox holds what
// this node decided until PostgreSQL has it; other nodes' bans and unbans
// are fetched in order and applied here as if an admin had made them, with
// the node that made them recorded. The syncer runs for the daemon's life,
// across reloads; PostgreSQL being away never stops the local pipeline.

// clusterFetch is how many changes one fetch carries at most.
const clusterFetch = 10000

// clusterSend is how many of the outbox's changes one send carries at
// most: while a backlog drains, the bans offered meanwhile wait for one
// such send at most.
const clusterSend = 2000

// outboxEvery is how often the outbox is sent while this node's bans are
// being offered (a flood): they go first, each send, and the outbox's
// copies of them, with their evidence, and its strikes follow at this
// pace, and at full speed once the flood is over. An unban in the outbox
// is sent at once, before the bans offered after it.
const outboxEvery = time.Second

// clusterApply is how many of other nodes' bans go to the committer, and
// to the store, at a time: a store transaction of that many takes some
// 50-100 ms here.
const clusterApply = 1000

// remoteBacklog is how many of other nodes' bans may wait for the store
// (already in the kernel) before the committer takes no more: the fetcher
// then waits, and the cluster holds them.
const remoteBacklog = 100_000

// A remoteBatch is a run of other nodes' bans, in the cluster's order, for
// the committer: into the kernel at once, into the store (with the
// cursor, when not 0: the number of the last change it covers) behind.
type remoteBatch struct {
	bans   []store.Remote
	cursor int64
}

// clusterPoll is how often other nodes' changes are fetched without a
// notification (a lost notification delays a change by at most this).
const clusterPoll = 5 * time.Second

// clusterSync moves changes between the store and PostgreSQL.
type clusterSync struct {
	d      *daemon
	cfg    config.Cluster
	node   string
	strike bool // share_strikes
	log    *slog.Logger

	source string        // the store's name in the cluster
	wake   chan struct{} // other nodes appended changes
	// fresh carries this node's bans from the committer to the sender as
	// they reach the kernel, so that the cluster has them before the
	// store does (the outbox sends them again; see offer). sending is
	// set while the sender runs.
	fresh   chan []cluster.Change
	sending atomic.Bool
	// unbanQueued is set when an admin's unban went into the outbox, and
	// cleared once the outbox has been sent to its end. The sender's own:
	// lastOutbox, when it last sent the outbox; carry, offered bans held
	// back until an unban before them is sent.
	unbanQueued atomic.Bool
	lastOutbox  time.Time
	carry       []cluster.Change
	client      atomic.Pointer[cluster.Client] // once connected

	connected atomic.Bool
	sent      atomic.Int64 // changes sent (new to the cluster)
	received  atomic.Int64 // changes applied from other nodes
	cursor    atomic.Int64 // the last change applied
}

// nodeName is cfg's node, or the host name's first label.
func nodeName(cfg config.Cluster) string {
	if cfg.Node != "" {
		return cfg.Node
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "banwatch"
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// startCluster starts the syncer when [cluster] is set; it returns at once
// (connecting is the syncer's work) and the syncer stops with ctx.
func (d *daemon) startCluster(ctx context.Context, cfg config.Cluster) (stop func()) {
	if !cfg.Enabled() {
		return func() {}
	}
	what := store.OutboxBans
	if cfg.ShareStrikes {
		what |= store.OutboxStrikes
	}
	d.store.SetOutbox(what)
	c := &clusterSync{d: d, cfg: cfg, node: nodeName(cfg), strike: cfg.ShareStrikes,
		log: d.log.With("component", "cluster"), wake: make(chan struct{}, 1), fresh: make(chan []cluster.Change, 4096)}
	d.cluster = c
	d.registerClusterMetrics(c)
	cctx, cancel := context.WithCancel(ctx) // what waits is kept in the outbox
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(cctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// run connects (again and again until it can), then sends, listens and
// fetches until ctx is done.
func (c *clusterSync) run(ctx context.Context) {
	src, cursor, err := c.d.store.ClusterState(ctx)
	if err != nil {
		c.log.Error("cluster mode off: cannot read the store's cluster state", "err", err)
		return
	}
	c.source = src
	c.cursor.Store(cursor)
	var client *cluster.Client
	for delay := time.Second; ; delay = min(delay*2, 10*time.Second) {
		client, err = cluster.Connect(ctx, cluster.Options{DSN: c.cfg.Postgres, Node: c.node,
			PasswordFile: c.cfg.PasswordFile, CAFile: c.cfg.CAFile, CertFile: c.cfg.CertFile, KeyFile: c.cfg.KeyFile, Log: c.log})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("cannot reach the cluster's PostgreSQL; banning locally meanwhile", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	defer client.Close()
	// A store restored from a backup numbers its changes from where the
	// backup was: move its outbox past what the cluster already has, or
	// its next changes would be dropped as sent twice. Until that is
	// done nothing is sent (the sender starts after).
	if !c.untilDone(ctx, "reading what the cluster has of this node's changes", func() error {
		last, err := client.LastSent(ctx, c.source)
		if err != nil {
			return err
		}
		return c.d.store.OutboxAfter(ctx, last)
	}) {
		return
	}
	c.client.Store(client)
	c.log.Info("cluster connected", "node", c.node, "share_strikes", c.strike, "cursor", cursor)

	errs := make(chan error, 4)
	go func() { errs <- c.sender(ctx, client) }()
	go func() { errs <- c.pruner(ctx, client) }()
	go func() {
		errs <- client.Listen(ctx, func() {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}, c.connected.Store)
	}()
	go func() { errs <- c.fetcher(ctx, client) }()
	for range 4 {
		<-errs
	}
}

// clusterPruneFirst is how long after connecting the cluster is first
// pruned; then every pruneEvery, as the store is.
const clusterPruneFirst = 10 * time.Second

// clusterStrikesKept is the least time the cluster keeps shared strikes:
// longer than this node's jails remember them, since other nodes may
// remember longer, and a node catching up after an outage reads them.
const clusterStrikesKept = 24 * time.Hour

// pruner prunes the cluster's changes as the store prunes its rows:
// strikes older than the running jails remember (at least
// clusterStrikesKept), bans that ended before [daemon] history. Every node
// runs it; PostgreSQL lets one at a time do the work.
func (c *clusterSync) pruner(ctx context.Context, client *cluster.Client) error {
	t := time.NewTimer(clusterPruneFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if g := c.d.current(); g != nil {
			now := time.Now()
			n, err := client.Prune(ctx, now.Add(-max(g.memory(), clusterStrikesKept)), now.Add(-g.cfg.Daemon.History))
			switch {
			case err != nil && ctx.Err() == nil:
				c.log.Warn("pruning the cluster's old changes failed", "err", err)
			case n > 0:
				c.log.Info("cluster pruned", "changes", n)
			}
		}
		t.Reset(pruneEvery)
	}
}

// untilDone calls fn until it succeeds, a second after each failure
// (logged); false when ctx ends first.
func (c *clusterSync) untilDone(ctx context.Context, what string, fn func() error) bool {
	for {
		err := fn()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.log.Warn(what+" failed", "err", err)
		if !retry(ctx, time.Second) {
			return false
		}
	}
}

// retry waits after a failed exchange with PostgreSQL: false when ctx is
// done.
func retry(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// offer hands this node's bans, just put into the kernel, to the sender
// (committer only; it never waits). They are sent with the outbox's next
// changes, without a number: the store commits them behind the kernel, and
// the outbox sends them again, numbered and with their evidence, which
// completes the cluster's copy. Bans the sender cannot take now, or
// fails to send, go with the outbox only.
func (c *clusterSync) offer(bans []*ban.Ban) {
	if !c.sending.Load() {
		return
	}
	changes := make([]cluster.Change, 0, len(bans))
	for _, b := range bans {
		if b.Node != "" || b.Installed {
			continue // another node's, or offered when first installed
		}
		changes = append(changes, c.banChange(0, b))
	}
	if len(changes) == 0 {
		return
	}
	select {
	case c.fresh <- changes:
	default:
	}
}

// sender sends the outbox to PostgreSQL every cfg.Batch, and this node's
// bans as they are made.
func (c *clusterSync) sender(ctx context.Context, client *cluster.Client) error {
	c.sending.Store(true)
	defer c.sending.Store(false)
	c.repeat(ctx, "sending to the cluster", "the changes wait in the store", clusterSend,
		func() (int, error) { return c.sendOnce(ctx, client) },
		func() bool { return retry(ctx, c.cfg.Batch) })
	return nil
}

// repeat calls once until ctx is done: again at once when it did a full
// load (full), after a second when it failed (logged once until
// it works again), else after wait (false: stop).
func (c *clusterSync) repeat(ctx context.Context, what, meanwhile string, full int, once func() (int, error), wait func() bool) {
	failing := false
	for {
		n, err := once()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				c.log.Warn(what+" failed; "+meanwhile, "err", err)
				failing = true
			}
			if !retry(ctx, time.Second) {
				return
			}
			continue
		case failing:
			c.log.Info(what + " works again")
			failing = false
		}
		if n < full && !wait() {
			return
		}
	}
}

// sendOnce sends the bans offered since the last time and the outbox's
// first changes, which it then removes from the outbox. The offered bans
// go first, alone, while the outbox was sent less than outboxEvery ago;
// but an admin's unban in the outbox is sent before them, so that the
// other nodes apply the two in the order they were made: until the
// outbox has been sent up to its end, the offered bans wait (carry).
func (c *clusterSync) sendOnce(ctx context.Context, client *cluster.Client) (int, error) {
	fresh := c.carry
	c.carry = nil
	for more := true; more && len(fresh) < clusterFetch; {
		select {
		case f := <-c.fresh:
			fresh = append(fresh, f...)
		default:
			more = false
		}
	}
	if len(fresh) > 0 && !c.unbanQueued.Load() && time.Since(c.lastOutbox) < outboxEvery {
		return 0, c.send(ctx, client, fresh) // lost on an error: the outbox has them
	}
	c.lastOutbox = time.Now()
	unbanQueued := c.unbanQueued.Swap(false)
	keep := func() { // the outbox is not sent to its end yet
		if unbanQueued {
			c.unbanQueued.Store(true)
		}
	}
	pending, err := c.d.store.Pending(ctx, clusterSend)
	if err != nil {
		keep()
		return 0, err
	}
	outbox, unban := c.outboxChanges(pending)
	more := len(pending) == clusterSend
	var parts [][]cluster.Change
	switch {
	case !unbanQueued && !unban:
		parts = [][]cluster.Change{fresh, outbox}
	case more:
		// An unban may be further on: the offered bans wait for it.
		parts, c.carry = [][]cluster.Change{outbox}, fresh
		keep()
	default:
		parts = [][]cluster.Change{append(outbox, fresh...)}
	}
	for _, part := range parts {
		if err := c.send(ctx, client, part); err != nil {
			keep()
			c.carry = nil // the outbox has them
			return 0, err
		}
	}
	if len(pending) == 0 {
		return 0, nil
	}
	if err := c.d.store.Sent(ctx, pending[len(pending)-1].Seq); err != nil {
		return 0, err
	}
	return len(pending), nil
}

// send appends changes (if any) to the cluster.
func (c *clusterSync) send(ctx context.Context, client *cluster.Client, changes []cluster.Change) error {
	if len(changes) == 0 {
		return nil
	}
	t0 := time.Now()
	added, err := client.Append(ctx, changes)
	c.log.Debug("cluster changes sent", "changes", len(changes), "new", added, "append", time.Since(t0))
	if err != nil {
		return err
	}
	c.sent.Add(int64(added))
	return nil
}

// banChange is this node's ban b as the cluster's change number seq of
// this store (0: sent as made, not numbered).
func (c *clusterSync) banChange(seq int64, b *ban.Ban) cluster.Change {
	return cluster.Change{Node: c.node, Source: c.source, NodeSeq: seq, Kind: cluster.KindBan,
		Jail: b.Jail, Prefix: b.Prefix.Masked(), At: b.Start, End: b.End, Origin: b.Origin, Reason: b.Reason,
		Strikes: b.Strikes, FirstEvent: b.FirstEvent, LastEvent: b.LastEvent, Evidence: b.Evidence}
}

// outboxChanges turns the outbox's changes into the cluster's, and tells
// whether one is an unban.
func (c *clusterSync) outboxChanges(pending []store.Pending) (out []cluster.Change, unban bool) {
	out = make([]cluster.Change, 0, len(pending))
	for _, p := range pending {
		ch := cluster.Change{Node: c.node, Source: c.source, NodeSeq: p.Seq, Kind: cluster.Kind(p.Kind)}
		switch p.Kind {
		case "ban":
			if p.Ban.ID == 0 {
				continue // pruned before it was sent
			}
			ch = c.banChange(p.Seq, &p.Ban)
		case "unban":
			ch.Jail, ch.Prefix, ch.At, ch.By = p.Ban.Jail, p.Ban.Prefix, p.Ban.EndedAt, p.Ban.EndedBy
			unban = true
		case "strike":
			k := &p.Strike
			ch.Jail, ch.Prefix, ch.At, ch.Event, ch.Weight = k.Jail, ban.PrefixOf(k.Addr), k.Time, string(k.Kind), k.Weight
		}
		out = append(out, ch)
	}
	return out, unban
}

// fetcher applies other nodes' changes when woken, and every clusterPoll.
func (c *clusterSync) fetcher(ctx context.Context, client *cluster.Client) error {
	// A node new to the cluster starts with its active bans.
	if c.cursor.Load() == 0 && !c.untilDone(ctx, "loading the cluster's active bans", func() error { return c.loadActive(ctx, client) }) {
		return nil
	}
	tick := time.NewTicker(clusterPoll)
	defer tick.Stop()
	c.repeat(ctx, "fetching from the cluster", "other nodes' changes wait there", clusterFetch,
		func() (int, error) { return c.fetchOnce(ctx, client) },
		func() bool {
			select {
			case <-ctx.Done():
				return false
			case <-c.wake:
			case <-tick.C:
			}
			return true
		})
	return nil
}

// loadActive applies the cluster's active bans (a node's first start).
func (c *clusterSync) loadActive(ctx context.Context, client *cluster.Client) error {
	changes, last, err := client.Active(ctx, now())
	if err != nil {
		return err
	}
	if err := c.apply(ctx, changes, last, false); err != nil {
		return err
	}
	c.log.Info("cluster's active bans loaded", "bans", len(changes), "cursor", last)
	return nil
}

// fetchOnce applies the next changes of other nodes.
func (c *clusterSync) fetchOnce(ctx context.Context, client *cluster.Client) (int, error) {
	changes, err := client.Since(ctx, c.cursor.Load(), clusterFetch, c.strike)
	if err != nil || len(changes) == 0 {
		return 0, err
	}
	return len(changes), c.apply(ctx, changes, changes[len(changes)-1].Seq, true)
}

// apply applies other nodes' changes, in order, and then stores cursor.
// Runs of bans go to the committer, which puts them into the kernel at
// once and into the store behind (with the number of their last change,
// when ordered: changes come in the cluster's order); an unban waits until
// the store holds what came before it, then ends the bans it lifts in the
// store and the kernel. Strikes go to the processor. The jails learn of
// the bans and unbans last.
func (c *clusterSync) apply(ctx context.Context, changes []cluster.Change, cursor int64, ordered bool) error {
	var (
		strikes []ban.Strike
		run     []store.Remote
		added   []*ban.Ban
		ended   []ban.Ban
	)
	t0 := time.Now()
	// send hands the run of bans to the committer with the cursor after
	// them (0: none).
	send := func(after int64) error {
		if len(run) == 0 && after == 0 {
			return nil
		}
		if err := c.d.toCommitter(ctx, &remoteBatch{bans: run, cursor: after}); err != nil {
			return err
		}
		for _, r := range run {
			added = append(added, r.Ban)
		}
		run = nil
		return nil
	}
	var prev int64 // the number of the change before ch, when ordered
	for i := range changes {
		ch := &changes[i]
		switch ch.Kind {
		case cluster.KindStrike:
			if c.strike && ch.Prefix.IsSingleIP() {
				strikes = append(strikes, ban.Strike{Jail: ch.Jail, Addr: ch.Prefix.Addr(), Time: ch.At,
					Kind: event.Kind(ch.Event), Weight: ch.Weight, Node: ch.Node})
			}
		case cluster.KindBan:
			run = append(run, store.Remote{Ban: &ban.Ban{Prefix: ch.Prefix.Masked(), Jail: ch.Jail, Origin: ch.Origin,
				Start: ch.At, End: ch.End, Strikes: ch.Strikes, Reason: ch.Reason, FirstEvent: ch.FirstEvent,
				LastEvent: ch.LastEvent, Evidence: ch.Evidence, Node: ch.Node}})
			if len(run) >= clusterApply {
				after := int64(0)
				if ordered {
					after = ch.Seq
				}
				if err := send(after); err != nil {
					return err
				}
			}
		case cluster.KindUnban:
			if err := send(prev); err != nil {
				return err
			}
			after := int64(0)
			if ordered {
				after = ch.Seq
			}
			e, err := c.unban(ctx, store.RemoteUnban{Node: ch.Node, Jail: ch.Jail, Prefix: ch.Prefix, At: ch.At, By: ch.By}, after)
			if err != nil {
				return err
			}
			ended = append(ended, e...)
		}
		if ordered {
			prev = ch.Seq
		}
	}
	if err := send(cursor); err != nil {
		return err
	}
	c.cursor.Store(cursor)
	c.received.Add(int64(len(changes)))
	c.log.Debug("cluster changes applied", "changes", len(changes), "bans", len(added), "unbans", len(ended), "took", time.Since(t0))
	if len(strikes) > 0 {
		// The processor counts them and stores them with its next batch.
		// Strikes lost to a crash before that are not fetched again:
		// the cursor has moved on (bans, which matter more, are stored
		// with it).
		g := c.d.current()
		select {
		case g.remote <- strikes:
		case <-g.stopped:
			c.log.Warn("strikes from other nodes not counted: the pipeline was restarting", "strikes", len(strikes))
		case <-ctx.Done():
		}
	}
	if len(added) == 0 && len(ended) == 0 {
		return nil
	}
	// The jails learn of the bans, so that they stop counting strikes of
	// those addresses (and count them again after an unban).
	err := c.d.inProcessor(ctx, func(g *generation) {
		for _, b := range added {
			if jr := g.jailRun(b.Jail); jr != nil {
				jr.jail.MarkBanned(b.Prefix, b.End)
			}
		}
		for _, b := range ended {
			if jr := g.jailRun(b.Jail); jr != nil {
				jr.jail.Unmark(b.Prefix)
			}
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Warn("the jails were not told of the cluster's bans", "err", err)
	}
	return nil
}

// unban applies another node's unban on the committer, once the store
// holds every ban taken before it, with cursor (0: none), and lifts the
// bans it ended from the kernel.
func (c *clusterSync) unban(ctx context.Context, u store.RemoteUnban, cursor int64) ([]ban.Ban, error) {
	var applied store.Applied
	err := c.d.withGen(ctx, func(g *generation, bg context.Context) error {
		var err error
		if applied, err = c.d.store.ApplyRemote(bg, []store.Remote{{Unban: &u}}, cursor, now()); err != nil {
			return err
		}
		g.lift(bg, applied.Ended)
		return nil
	})
	return applied.Ended, err
}

// toCommitter hands rb to the current generation's committer; during a
// reload it waits for the next generation.
func (d *daemon) toCommitter(ctx context.Context, rb *remoteBatch) error {
	for {
		g := d.current()
		select {
		case g.remoteBans <- rb:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-g.stopped:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// registerClusterMetrics exposes the syncer's state.
func (d *daemon) registerClusterMetrics(c *clusterSync) {
	reg := d.metrics.reg
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "banwatch_cluster_connected",
		Help: "1 while the node listens for the other cluster nodes' changes, else 0."},
		func() float64 {
			if c.connected.Load() {
				return 1
			}
			return 0
		}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "banwatch_cluster_sent_total",
		Help: "Changes (bans, unbans, strikes) this node sent that the cluster did not have yet."},
		func() float64 { return float64(c.sent.Load()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "banwatch_cluster_received_total",
		Help: "Other nodes' changes this node applied."},
		func() float64 { return float64(c.received.Load()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "banwatch_cluster_pending",
		Help: "Changes waiting in the store to be sent to the cluster."},
		func() float64 {
			n, err := d.store.PendingCount(context.Background())
			if err != nil {
				return -1
			}
			return float64(n)
		}))
}

// history reads the cluster's history of bans (every node's), as bans of
// the store: an unbanned one ended by the unban, one past its end expired.
func (c *clusterSync) history(ctx context.Context, q control.HistoryQuery) ([]ban.Ban, error) {
	client := c.client.Load()
	if client == nil {
		return nil, errors.New("cluster: not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := client.History(ctx, cluster.HistoryQuery{Prefix: q.Prefix, Jail: q.Jail, Since: q.Since, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	t := now()
	out := make([]ban.Ban, len(got))
	for i := range got {
		g := &got[i]
		b := ban.Ban{Prefix: g.Prefix, Jail: g.Jail, Origin: g.Origin, Start: g.At, End: g.End, Strikes: g.Strikes,
			Reason: g.Reason, FirstEvent: g.FirstEvent, LastEvent: g.LastEvent, Evidence: g.Evidence, Node: g.Node}
		switch {
		case g.Unbanned != nil:
			b.Ended, b.EndedAt, b.EndedBy = ban.EndUnbanned, g.Unbanned.At, g.Unbanned.By+" on "+g.Unbanned.Node
		case !b.End.After(t):
			b.Ended, b.EndedAt = ban.EndExpired, b.End
		}
		out[i] = b
	}
	return out, nil
}
