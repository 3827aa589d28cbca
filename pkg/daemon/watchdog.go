package daemon

import (
	"context"
	"fmt"
	"time"
)

// watchdog calls opts.Alive every opts.AliveEvery while the pipeline
// answers, until ctx is done. A pipeline that hangs (a processor or
// committer stuck in a call that never returns) stops the keep-alives, and
// systemd restarts the daemon; the bans stay in the kernel meanwhile and
// the store restores them.
func (d *daemon) watchdog(ctx context.Context) {
	every := d.opts.AliveEvery
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.probe(ctx, every); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("no watchdog keep-alive: the pipeline does not answer", "err", err)
			}
			continue
		}
		d.opts.Alive()
	}
}

// probe checks that the running generation's processor and committer each
// take and run a no-op within the time given. The committer answers without
// first waiting for the store: a store that lags behind a flood of bans is
// busy, not hung. While a reload replaces the generation, the next one is
// probed.
func (d *daemon) probe(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for _, part := range []string{"processor", "committer"} {
		for {
			g := d.current()
			done := make(chan struct{})
			var send chan func(context.Context)
			var sendProbe chan func()
			if part == "processor" {
				send = g.procOps
			} else {
				sendProbe = g.probes
			}
			select {
			case send <- func(context.Context) { close(done) }:
			case sendProbe <- func() { close(done) }:
			case <-g.stopped:
				// Replaced by a reload: probe the next generation.
				select {
				case <-ctx.Done():
					return fmt.Errorf("daemon: no generation runs after %v (reloading)", within)
				case <-time.After(20 * time.Millisecond):
				}
				continue
			case <-ctx.Done():
				return fmt.Errorf("daemon: the %s did not take a probe within %v", part, within)
			}
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("daemon: the %s did not run a probe within %v", part, within)
			}
			break
		}
	}
	return nil
}
