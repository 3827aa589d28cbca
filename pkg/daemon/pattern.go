package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/banwatch/banwatch/pkg/source"
)

// How a pattern source looks for new files, and how long it keeps reading
// the previous file after a newer one appeared (a server may finish writing
// the old day's file for a moment).
const (
	patternScan  = source.ProbeEvery // the directory is looked at this often
	patternFull  = time.Minute       // the files are listed at least this often
	patternGrace = time.Minute
)

// patternSource follows the newest file matching a pattern, such as IceWarp's
// daily logs/smtp/s*.log: when a newer file (by modification time, then by
// name) appears, it follows that one too, and stops following the previous
// one patternGrace later. Lines keep their file's path, so read
// positions are kept per file.
type patternSource struct {
	pattern   string
	positions map[string]source.Position
	log       *slog.Logger
	newFile   func(path string, start source.Start) *source.File

	mu      sync.Mutex
	current *source.File // the newest file followed
}

// Stats reports the newest file followed (Path is that file's), or the
// pattern while none matches.
func (p *patternSource) Stats() source.FileStats {
	p.mu.Lock()
	f := p.current
	p.mu.Unlock()
	if f == nil {
		return source.FileStats{Path: p.pattern}
	}
	return f.Stats()
}

// Run implements source.Source.
func (p *patternSource) Run(ctx context.Context, out chan<- []source.Line) error {
	g, ctx := errgroup.WithContext(ctx)
	var current string
	var stopPrev context.CancelFunc
	follow := func(path string) context.CancelFunc {
		fctx, cancel := context.WithCancel(ctx)
		// Files of a pattern carry a time of day only (IceWarp), which the
		// source cannot search; a file never read before is read from its
		// start, and the processor leaves out events older than the window
		// of a first start.
		f := p.newFile(path, source.Start{Resume: p.positions[path]})
		p.mu.Lock()
		p.current = f
		p.mu.Unlock()
		g.Go(func() error { return f.Run(fctx, out) })
		return cancel
	}
	waiting := false
	var stopCurrent context.CancelFunc
	// The directory is looked at by the process's probe, with the quiet
	// logs' paths (source.OnProbe): an idle daemon wakes once for all,
	// and the files are listed below when the probe finds them due. The
	// lister is the probe's from then on; the first listing, always due,
	// is now.
	var lister patternLister
	lister.due(p.pattern, time.Now())
	due := make(chan struct{}, 1)
	stopProbe := source.OnProbe(func() {
		if lister.due(p.pattern, time.Now()) {
			select {
			case due <- struct{}{}:
			default:
			}
		}
	})
	defer stopProbe()
	for {
		if newest := newestMatch(p.pattern); newest != "" {
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
		case <-due:
		}
	}
}

// patternLister tells when a pattern's files are to be listed again. A
// log directory can hold years of daily files, each stat'ed by a listing;
// a new file changes the directory's modification time, so the listing
// waits for that, or for patternFull since the last one (a file written
// anew, a clock or file system that keeps coarse times). A pattern with
// wildcards in its directory part is listed every time.
type patternLister struct {
	dirTime time.Time // the directory's modification time at the last listing
	listed  time.Time // when the last listing was
}

// due reports whether pattern's files are to be listed at now, and if so
// takes it as done.
func (l *patternLister) due(pattern string, now time.Time) bool {
	dir := filepath.Dir(pattern)
	var dirTime time.Time
	if !hasMeta(dir) {
		if st, err := os.Stat(dir); err == nil {
			dirTime = st.ModTime()
		}
	}
	// A directory changed within the last scan may change again within
	// the same tick of a coarse clock, unseen: listed until it settles.
	if !dirTime.IsZero() && dirTime.Equal(l.dirTime) && now.Sub(dirTime) > patternScan && now.Sub(l.listed) < patternFull {
		return false
	}
	l.dirTime, l.listed = dirTime, now
	return true
}

// hasMeta reports whether path holds a filepath.Match wildcard.
func hasMeta(path string) bool { return strings.ContainsAny(path, `*?[\`) }

// newestMatch returns the file matching pattern that was modified last (the
// greatest name among equals), or "". Modification time rather than name:
// IceWarp's s20261128-01.log, rotated within a day, sorts before
// s20261128.log by name.
func newestMatch(pattern string) string {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return ""
	}
	sort.Strings(matches)
	var best string
	var bestTime time.Time
	for _, m := range matches {
		st, err := os.Stat(m)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if best == "" || !st.ModTime().Before(bestTime) {
			best, bestTime = m, st.ModTime()
		}
	}
	return best
}
