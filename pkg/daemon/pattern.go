package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/banwatch/banwatch/pkg/source"
)

// How a pattern source looks for new files, and how long it keeps reading
// the previous file after a newer one appeared (a server may finish writing
// the old day's file for a moment).
const (
	patternScan  = 2 * time.Second
	patternGrace = time.Minute
)

// patternSource follows the newest file matching a pattern, such as IceWarp's
// daily logs/smtp/s*.log: when a newer file (by name, which for dated names
// is by date) appears, it follows that one too, and stops following the
// previous one patternGrace later. Lines keep their file's path, so read
// positions are kept per file.
type patternSource struct {
	pattern   string
	positions map[string]source.Position
	since     time.Time
	log       *slog.Logger
	newFile   func(path string, start source.Start) source.Source
}

// Run implements source.Source.
func (p *patternSource) Run(ctx context.Context, out chan<- source.Line) error {
	g, ctx := errgroup.WithContext(ctx)
	var current string
	var stopPrev context.CancelFunc
	follow := func(path string) context.CancelFunc {
		fctx, cancel := context.WithCancel(ctx)
		start := source.Start{Resume: p.positions[path], Since: p.since}
		if current != "" && start.Resume == (source.Position{}) {
			// A file that appeared while we run is read from its start.
			start.Since = time.Time{}
		}
		f := p.newFile(path, start)
		g.Go(func() error { return f.Run(fctx, out) })
		return cancel
	}
	waiting := false
	tick := time.NewTicker(patternScan)
	defer tick.Stop()
	var stopCurrent context.CancelFunc
	for {
		matches, err := filepath.Glob(p.pattern)
		if err == nil && len(matches) > 0 {
			sort.Strings(matches)
			newest := matches[len(matches)-1]
			if newest != current {
				if current != "" {
					p.log.Info("following a newer file", "file", newest, "previous", current)
					prev := stopCurrent
					if stopPrev != nil {
						stopPrev()
					}
					stopPrev = prev
					time.AfterFunc(patternGrace, prev)
				}
				stopCurrent = follow(newest)
				current = newest
			}
		} else if current == "" && !waiting {
			p.log.Info("waiting for a file matching the pattern")
			waiting = true
		}
		select {
		case <-ctx.Done():
			if stopCurrent != nil {
				stopCurrent()
			}
			if stopPrev != nil {
				stopPrev()
			}
			return g.Wait()
		case <-tick.C:
		}
	}
}
