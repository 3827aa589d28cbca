package daemon

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/jail"
	"github.com/banwatch/banwatch/pkg/source"
)

// holdStrikes is how many strikes the processor's batch holds at most
// while the committer is busy; then it waits for the committer (and the
// sources for it). Strikes waiting for the store cost about 200 bytes
// each with their lines, twice that with the heap's headroom.
const holdStrikes = 4 * batchLines

// quietLines is how many lines in releaseQuiet still make a burst, whose
// memory is not given back yet.
const quietLines = 1000

// process reads lines until ctx is done, matches them, counts strikes and
// hands batches to the committer. It hands over what it has once it is ripe
// (it holds bans, is full, or batchAge old) and the committer is free, and a
// last batch when ctx is done; then it closes batches, which it owns. Lines
// come in the sources' batches, so that a log read fast costs one channel
// operation per batch.
func (g *generation) process(ctx context.Context, lines <-chan []source.Line, batches chan<- *batch) error {
	defer close(batches)
	b := newBatch()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	ripen := time.NewTimer(batchAge)
	ripen.Stop()
	defer ripen.Stop()
	// After a burst of lines, once the logs are quiet, the heap the burst
	// grew is given back to the system: the garbage collector lets the
	// heap grow to twice what is live, and the runtime returns the rest
	// only after a collection that sees it free, which may not come for
	// long once the lines are few. The burst's strikes (with their
	// lines) are garbage only once committed, so the committer gives the
	// heap back, as a control request (which it runs only when the store
	// holds every batch it took), offered once quiet and the processor's
	// batch handed over; releasing is the channel to offer it on, or nil.
	// The logs are quiet when fewer than quietLines came in the last
	// releaseQuiet: a busy server's trickle does not hold it back.
	quiet := time.NewTimer(releaseQuiet)
	quiet.Stop()
	defer quiet.Stop()
	var releasing chan<- func(context.Context)
	burst := 0       // lines since the last release
	recent := 0      // lines since quiet was set, once burst made it so
	waiting := false // quiet is set
	var ref time.Time
	for {
		// A ripe batch is offered to the committer while waiting for
		// lines; an unripe one when it will be ripe; the release of a
		// burst's memory once no batch is left. A nil channel disables
		// its case.
		var out chan<- *batch
		var ripening <-chan time.Time
		var release chan<- func(context.Context)
		if b.empty() {
			release = releasing
		} else if t := now(); b.ripe(t) {
			out = batches
		} else {
			ripen.Reset(batchAge - t.Sub(b.started))
			ripening = ripen.C
		}
		select {
		case <-ripening:
		case <-ctx.Done():
			if !b.empty() {
				batches <- b
			}
			return nil
		case out <- b:
			b = newBatch()
		case fn := <-g.procOps:
			fn(ctx)
		case h := <-g.dnsblHits:
			if b.lines == 0 {
				b.started = now()
			}
			g.applyDNSBL(h, b)
		case ks := <-g.remote:
			if b.lines == 0 {
				b.started = now()
			}
			g.applyRemoteStrikes(ks, b)
		case m := <-g.marks:
			if jr := g.jailRun(m.jail); jr != nil {
				if m.unmark {
					jr.jail.Unmark(m.prefix)
				} else {
					jr.jail.MarkBanned(m.prefix, m.end)
				}
			}
		case <-quiet.C:
			if recent >= quietLines {
				recent = 0
				quiet.Reset(releaseQuiet)
				break
			}
			burst, recent, waiting = 0, 0, false
			releasing = g.ctl
		case release <- freeOSMemory:
			releasing = nil
		case <-sweep.C:
			t := now()
			for _, jr := range g.jails {
				jr.jail.Sweep(t)
				jr.tracked.Store(int64(jr.jail.Tracked()))
			}
		case ls := <-lines:
			if b.lines == 0 {
				b.started = now()
				ref = b.started
			}
			g.handle(ctx, ls, b, ref)
			burst += len(ls)
			recent += len(ls)
			// Take what is waiting, up to a batch, without blocking.
		drain:
			for b.lines < batchLines {
				select {
				case ls = <-lines:
					g.handle(ctx, ls, b, ref)
					burst += len(ls)
					recent += len(ls)
				default:
					break drain
				}
			}
			if burst >= releaseAfter && !waiting {
				recent, waiting = 0, true
				quiet.Reset(releaseQuiet)
			}
			if b.ripe(now()) {
				select {
				case batches <- b:
					b = newBatch()
				default:
					// The committer is busy: keep filling this batch, unless
					// it has grown so large that waiting is better.
					if len(b.strikes) >= holdStrikes {
						select {
						case batches <- b:
							b = newBatch()
						case <-ctx.Done():
						}
					}
				}
			}
		}
	}
}

// handle runs a batch of lines through the jails that read their logs.
func (g *generation) handle(ctx context.Context, ls []source.Line, b *batch, ref time.Time) {
	for i := 0; i < len(ls); {
		// A source's batch holds the lines of one log; the lines of one
		// log share their jails, time reference and position entry.
		path := ls[i].Path
		j := i + 1
		for j < len(ls) && ls[j].Path == path {
			j++
		}
		g.handleLog(ctx, path, ls[i:j], b, ref)
		i = j
	}
}

// handleLog runs lines of the log path through the jails that read it.
func (g *generation) handleLog(ctx context.Context, path string, ls []source.Line, b *batch, ref time.Time) {
	b.lines += len(ls)
	b.positions[path] = ls[len(ls)-1].Pos
	jrs := g.jailsFor(path)
	if r, ok := g.refs[path]; ok {
		ref = r
	}
	resumed := g.resumed[path]
	var skipped int64
	for k := range ls {
		l := &ls[k]
		if l.Skipped {
			skipped++
			continue
		}
		for _, jr := range jrs {
			g.match(ctx, jr, l, b, ref, resumed)
		}
	}
	if skipped > 0 {
		g.skipped.Add(skipped)
	}
	// Counted after the lines' events, so that a reader who sees the lines
	// counted sees their events too.
	for _, jr := range jrs {
		jr.tracked.Store(int64(jr.jail.Tracked()))
		jr.lines.Add(int64(len(ls)) - skipped)
	}
}

// match runs one line through one jail. resumed tells whether its log had
// a stored read position at start.
func (g *generation) match(ctx context.Context, jr *jailRun, l *source.Line, b *batch, ref time.Time, resumed bool) {
	jr.evs = jr.matcher.Match(l.Text, ref, jr.evs[:0])
	if len(jr.evs) == 0 {
		if jr.filter.Syslog() && !jr.matcher.Timed(l.Text) {
			jr.unparsable.Add(1) // a syslog line without a time we can read
		}
		return
	}
	ev := jr.evs[0]
	jr.events.Add(1)
	if k := ev.Kind.Index(); k >= 0 {
		jr.kinds[k].Add(1)
	}
	if ev.Time.IsZero() {
		jr.unparsable.Add(1)
		return
	}
	if !resumed && ev.Time.Before(g.started.Add(-jr.cfg.FindTime)) {
		// A log read for the first time: its history before the window
		// is not replayed as new strikes.
		jr.old.Add(1)
		return
	}
	var out jail.Outcome
	g.decisions, out = jr.jail.Observe(&ev, g.decisions[:0])
	if out == jail.Trusted {
		jr.trusted.Add(1)
	}
	keep := out == jail.Counted || out == jail.Banned
	if ev.Kind == event.AuthSuccess && jr.remembersSuccess {
		keep = true // trust and legitimate values are rebuilt from it after a restart
	}
	if !keep {
		return
	}
	if out == jail.Counted || out == jail.Banned {
		jr.strikes.Add(1)
	}
	b.strikes = append(b.strikes, ban.Strike{
		Jail: jr.cfg.Name, Addr: ev.Addr.Unmap(), Time: ev.Time, Kind: ev.Kind,
		Weight: jr.cfg.Weight(ev.Kind), Line: string(l.Text),
	})
	g.addBans(jr, b)
	if out == jail.Counted {
		g.askDNSBL(ctx, jr, ev.Addr.Unmap(), ev.Time)
	}
}

// applyRemoteStrikes counts other nodes' strikes (share_strikes) in the
// jails, as DNSBL listings are counted: they are stored with the batch
// (their node named, and a line saying so for evidence), and a window they
// fill makes a ban here like any other.
func (g *generation) applyRemoteStrikes(ks []ban.Strike, b *batch) {
	for i := range ks {
		k := &ks[i]
		jr := g.jailRun(k.Jail)
		if jr == nil {
			continue
		}
		var out jail.Outcome
		g.decisions, out = jr.jail.AddStrikes(k.Addr, k.Time, k.Kind, k.Weight, g.decisions[:0])
		if out != jail.Counted && out != jail.Banned {
			continue
		}
		jr.strikes.Add(1)
		k.Line = "(a strike counted on " + k.Node + ": " + string(k.Kind) + ")"
		b.strikes = append(b.strikes, *k)
		g.addBans(jr, b)
	}
}

// freeOSMemory runs a garbage collection and returns the free heap to the
// system; a control request for the committer.
func freeOSMemory(context.Context) { debug.FreeOSMemory() }
