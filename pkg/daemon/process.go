package daemon

import (
	"context"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/jail"
	"github.com/banwatch/banwatch/pkg/logtime"
	"github.com/banwatch/banwatch/pkg/source"
)

// process reads lines until ctx is done, matches them, counts strikes and
// hands batches to the committer. It hands over what it has when no line is
// waiting, when a batch is full or old, and a last batch when ctx is done;
// then it closes batches, which it owns.
func (g *generation) process(ctx context.Context, lines <-chan source.Line, batches chan<- *batch) error {
	defer close(batches)
	b := newBatch()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	var ref time.Time
	for {
		// A pending batch is offered to the committer while waiting for
		// lines; a nil channel disables that case.
		var out chan<- *batch
		if !b.empty() {
			out = batches
		}
		select {
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
		case m := <-g.marks:
			if jr := g.jailRun(m.jail); jr != nil {
				if m.unmark {
					jr.jail.Unmark(m.prefix)
				} else {
					jr.jail.MarkBanned(m.prefix, m.end)
				}
			}
		case <-sweep.C:
			t := now()
			for _, jr := range g.jails {
				jr.jail.Sweep(t)
			}
		case l := <-lines:
			if b.lines == 0 {
				b.started = now()
				ref = b.started
			}
			g.handle(ctx, &l, b, ref)
			// Take what is waiting, up to a batch, without blocking.
		drain:
			for b.lines < batchLines {
				select {
				case l = <-lines:
					g.handle(ctx, &l, b, ref)
				default:
					break drain
				}
			}
			if b.lines >= batchLines || now().Sub(b.started) >= batchMaxAge || len(b.bans) > 0 || len(lines) == 0 {
				select {
				case batches <- b:
					b = newBatch()
				default:
					// The committer is busy: keep filling this batch, unless
					// it has grown so large that waiting is better.
					if len(b.strikes) >= retryStrikes/4 {
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

// handle runs one line through the jails that read its log.
func (g *generation) handle(ctx context.Context, l *source.Line, b *batch, ref time.Time) {
	b.lines++
	b.positions[l.Path] = l.Pos
	if l.Skipped {
		g.skipped.Add(1)
		return
	}
	jrs := g.jailsFor(l.Path)
	if r, ok := g.refs[l.Path]; ok {
		ref = r
	}
	for _, jr := range jrs {
		jr.lines.Add(1)
		ev, ok := jr.filter.Match(l.Text, ref)
		if !ok {
			if jr.filter.Syslog() {
				if _, timed := logtime.Len(l.Text); !timed {
					jr.unparsable.Add(1) // a syslog line without a time we can read
				}
			}
			continue
		}
		jr.events.Add(1)
		if ev.Time.IsZero() {
			jr.unparsable.Add(1)
			continue
		}
		if !g.resumed[l.Path] && ev.Time.Before(g.started.Add(-jr.cfg.FindTime)) {
			// A log read for the first time: its history before the window
			// is not replayed as new strikes.
			jr.old.Add(1)
			continue
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
			continue
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
}
