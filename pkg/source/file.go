package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/nxadm/tail"
)

// Defaults and timings of a File.
const (
	// DefaultMaxLine is FileOptions.MaxLine when it is not set.
	DefaultMaxLine = 64 << 10
	// DefaultRotateWait is FileOptions.RotateWait when it is not set.
	DefaultRotateWait = 2 * time.Second

	checkEvery = 100 * time.Millisecond // stat of the path, truncation, drain and stall checks
	quietAfter = 20                     // checks in a row that saw the log unchanged: then ProbeEvery
	maxDrain   = time.Minute            // a rotated file that keeps growing is left after this
	stallAfter = 500 * time.Millisecond // a complete line unread this long restarts the tail (inotify)
	stallPoll  = 1500 * time.Millisecond
	maxFails   = 5 // consecutive failures of nxadm/tail before Run gives up
	fpLen      = 1024
	sigLen     = 64

	// Batches (see runner.settle): lines are verified and sent in batches
	// of at most verifyLines. A line that comes verifyEvery or more after
	// the last verification is verified and sent at once (a log that
	// grows slowly loses no time), and so is one that comes sparseGap or
	// more after a verification of a single line (lines that come one by
	// one); any other waits for the rest of verifyEvery with those that
	// follow it (a burst). Go's timers are no finer than a millisecond when
	// the process is idle; verifying and sending whenever the tail has no
	// line ready would cost a fifth of the throughput in small batches and
	// wake-ups of the receiver.
	verifyLines = 512
	verifyEvery = time.Millisecond
	sparseGap   = 20 * time.Microsecond
	// maxPending lines are held for a receiver that does not keep up before
	// the tail is left to wait.
	maxPending   = 4 * verifyLines
	pendingChunk = 2 * verifyLines // room for lines, allocated at once
)

// FileOptions tune a File. The zero value is usable.
type FileOptions struct {
	// MaxLine is the longest line handed out, in bytes without the newline
	// (and without a trailing "\r"); default DefaultMaxLine. A longer line
	// is skipped whole and reported once as Line{Skipped: true}: it is never
	// cut into pieces, since the middle of a line an attacker wrote could
	// look like the start of a real log line.
	MaxLine int
	// Poll makes nxadm/tail poll the file (every 250 ms) instead of using
	// inotify.
	Poll bool
	// ParseTime reads the time of a line, for Start.Since; the daemon
	// passes a function built on pkg/logtime. Without it, Since is ignored
	// and a first start reads the whole file.
	ParseTime func(line []byte) (time.Time, bool)
	// RotateWait is how long a file that was rotated away (renamed or
	// deleted) is still read after it last grew, for a writer that has not
	// reopened its log yet, before the new file at the path is read;
	// default DefaultRotateWait. A copy left by copytruncate is read to its
	// end at once.
	RotateWait time.Duration
}

// FileStats is the state of a File, for status output.
type FileStats struct {
	Path    string
	Open    bool     // a file is open (false while waiting for the log to appear)
	Lines   int64    // lines handed out (not counting skipped ones)
	Skipped int64    // lines skipped because they were longer than MaxLine
	Pos     Position // the position after the last line handed out or skipped
}

// Lag is how many bytes of the file being read come after the position:
// its size less the offset. ok is false while no file is open, for a
// journal, or when the path now names another file than the one read (a
// rotated file being drained).
func (s FileStats) Lag() (n int64, ok bool) {
	if !s.Open || s.Pos.Cursor != "" {
		return 0, false
	}
	st, err := os.Stat(s.Path)
	if err != nil {
		return 0, false
	}
	if _, ino := devIno(st); ino != s.Pos.Inode {
		return 0, false
	}
	return max(st.Size()-s.Pos.Offset, 0), true
}

// File follows one log path: it is a Source.
//
// It reads the file with nxadm/tail and keeps the exact byte offset of every
// line itself. nxadm/tail runs with ReOpen off, on one file at a time, by a
// name that can only ever mean that file (see follow.go); File itself
// notices rotation (a new inode at the path, or none), truncation (the size
// below the offset, or a new first line) and decides which file is read
// next, so that a rotation loses no line and reads none twice.
//
// What the path names is looked at as a program opening it would see it:
//   - A symbolic link is followed, every time the path is looked at (as
//     tail -F does): /var/log/mail.log -> mail/current is normal. A link
//     made or changed to name another file is a rotation to that file: the
//     rest of the file read so far is read, then the target from its start.
//     A link to a file that is no log (/etc/shadow, left by whoever can
//     write the log's directory) is read like a log and harms nothing: its
//     lines go through the filters like any others and are never logged,
//     and only lines a filter matches are kept (as evidence in the store).
//   - Only regular files are opened. A FIFO, a device, a socket or a
//     directory at the path is never opened (a FIFO would block, a device
//     never end): Run fails if the path holds one at its start; later, it
//     is skipped with one warning, the file read so far stays the log, and
//     a regular file at the path is read once there is one again.
//   - A missing path, or a missing directory, is waited for.
type File struct {
	path  string
	start Start
	log   *slog.Logger
	opts  FileOptions

	mu    sync.Mutex
	stats FileStats
}

// NewFile returns a File that follows path, starting as start says. The
// logger gets the path as an attribute; nil discards the messages.
func NewFile(path string, start Start, logger *slog.Logger, opts FileOptions) *File {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.RotateWait <= 0 {
		opts.RotateWait = DefaultRotateWait
	}
	return &File{
		path:  path,
		start: start,
		log:   logger.With("path", path),
		opts:  opts,
		stats: FileStats{Path: path},
	}
}

// Stats returns the state of f. It is safe for concurrent use.
func (f *File) Stats() FileStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Run implements Source: it sends the log's lines to out until ctx is done,
// then returns nil. It waits for a log that does not exist yet. It returns
// an error only when the log cannot be read at all (a path that is not a
// regular file or cannot be opened at the start, or nxadm/tail failing
// repeatedly).
//
// Run may be called again after it returned (the daemon restarts a source
// that failed): it then resumes after the last line it handed out.
//
// Lines are sent in batches: those that nxadm/tail has ready are taken
// together (see runner.settle), so that a log read fast costs one check of
// the file and one send per batch rather than per line.
func (f *File) Run(ctx context.Context, out chan<- []Line) error {
	if pos := f.Stats().Pos; pos != (Position{}) {
		f.start = Start{Resume: pos}
	}
	r := newRunner(f)
	defer r.close()
	if err := r.begin(); err != nil {
		return err
	}
	// Whatever is not a line (ctx done, the check tick, the end of a
	// burst) wakes the loop through one channel, so that the select that
	// waits for each line has two or three cases and no timer channel: a
	// select costs per case, a timer's channel more.
	r.poke = make(chan struct{}, 1)
	stop := context.AfterFunc(ctx, r.wake)
	defer stop()
	r.tick = time.AfterFunc(checkEvery, func() { r.tickDue.Store(true); r.wake() })
	defer r.tick.Stop()
	defer quiet.remove(r)
	r.flush = time.AfterFunc(time.Hour, func() { r.flushDue.Store(true); r.wake() })
	r.flush.Stop()
	defer r.flush.Stop()
	for {
		// The tail is read while there is room for its lines; the
		// verified lines are offered to the receiver meanwhile.
		var lines <-chan *tail.Line
		if r.t != nil && len(r.pending) < maxPending {
			lines = r.tLines
		}
		var send chan<- []Line
		var batch []Line
		if n := len(r.pending) - r.unv; n > 0 {
			send, batch = out, r.pending[:n:n]
			select {
			case send <- batch:
				r.sent(batch)
				send, batch = nil, nil
			default:
			}
		}
		var err error
		if lines != nil && len(r.poke) == 0 {
			// A line that is ready is taken without the select below,
			// unless something else waits.
			select {
			case tl, ok := <-lines:
				if err = r.line(tl, ok); err != nil {
					return r.stopped(ctx, err)
				}
				continue
			default:
			}
		}
		select {
		case tl, ok := <-lines:
			err = r.line(tl, ok)
		case send <- batch:
			r.sent(batch)
		case <-r.poke:
			if ctx.Err() != nil {
				return nil
			}
			if r.flushDue.Swap(false) {
				r.flushArmed = false
				_, err = r.settle()
			}
			if err == nil && r.tickDue.Swap(false) {
				// A tail left unread because the receiver is slow is no
				// stall.
				err = r.check(r.t != nil && lines == nil)
				r.schedule()
			}
		}
		if err != nil {
			return r.stopped(ctx, err)
		}
	}
}

// schedule arms the next check: every checkEvery, or, once the log has
// been quiet for quietAfter checks in a row, the quiet probe (quietSet),
// which wakes the runner for a check as soon as its path shows any change,
// within one and a half ProbeEvery. An idle daemon with many logs so does
// not wake up ten times a second for each, nor once a second for each.
// inotify still hands out new lines at once; only noticing a rotation or
// a truncation of a quiet log takes up to one and a half ProbeEvery.
func (r *runner) schedule() {
	off, n := int64(-1), int64(len(r.queue))
	if n > 0 {
		off = r.queue[0].off
	}
	if off == r.lastOff && n == r.lastQueue && len(r.pending) == 0 && r.quietNow() {
		r.unchanged++
	} else {
		r.unchanged = 0
	}
	r.lastOff, r.lastQueue = off, n
	if r.unchanged >= quietAfter {
		quiet.add(r, r.snap)
		return
	}
	r.tick.Reset(checkEvery)
}

// quietNow reports whether the last check left the log as the quiet probe
// can watch it, from its path alone: a path that is missing, or one file
// alone (no rotated file left to drain) at the path, read by a running
// tail with no complete line left unread, its size as the path showed it,
// and settled.
func (r *runner) quietNow() bool {
	if !r.snapOK {
		return false
	}
	s := &r.snap
	switch len(r.queue) {
	case 0:
		return r.waiting && s.failed && s.errno == syscall.ENOENT
	case 1:
		g := r.queue[0]
		return r.t != nil && !r.long.active && !r.more && !g.rotated && !s.failed &&
			s.dev == g.dev && s.ino == g.ino && s.size == g.lastSize && s.settled(time.Now())
	}
	return false
}

// aligned returns how long it is from now to the next whole multiple of
// every (counted from the Unix epoch) that is at least every/2 away. The
// quiet probe waits for it, so that its instants stay the same whoever
// started it and however long each probe took.
func aligned(now time.Time, every time.Duration) time.Duration {
	d := every - time.Duration(now.UnixNano()%int64(every))
	if d < every/2 {
		d += every
	}
	return d
}

// line handles what came from the tail's Lines.
func (r *runner) line(tl *tail.Line, ok bool) error {
	if !ok {
		return r.tailEnded()
	}
	return r.take(tl)
}

// stopped is what Run returns for err: nil once ctx is done.
func (r *runner) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// wake makes Run look at its flags and ctx.
func (r *runner) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// runner is the state of one Run.
type runner struct {
	f          *File
	path       string
	log        *slog.Logger
	maxLine    int
	chunk      int // nxadm/tail's MaxLineSize: longer lines come in pieces of this size
	rotateWait time.Duration

	// queue holds the files still to read, in order: queue[0] is being
	// read; only the last one may still be the file at the path (live).
	queue     []*gen
	tick      *time.Timer // sets tickDue every checkEvery
	waiting   bool        // the path is missing and there is nothing to read
	statErr   string      // the last error statting the path, logged once
	irregular string      // the kind of non-regular file at the path, logged once
	left      []leftFile  // files read to their end and let go, newest last

	// The nxadm/tail reading queue[0], if any (see follow.go), and its
	// lines through relay.
	t          *tail.Tail
	tLines     <-chan *tail.Line
	tStop      chan struct{}
	tKey       string
	tInotify   bool
	tDev, tIno uint64
	long       longLine
	moves      uint64    // lines taken from the tail or batches sent, ever
	stuckMoves uint64    // moves when stuckSince was set
	stuckSince time.Time // since when a complete line waits unread
	restartAt  time.Time // when to start a tail again after a failure
	failures   int
	pollWarned bool

	// Lines accepted and not sent yet, in order. The last unv of them are
	// not verified yet (see settle): they are from vgen, which stood at
	// vOff after the line vLast.
	pending     []Line
	unv         int
	vgen        *gen
	vOff        int64
	vLast       []byte
	lastVerify  time.Time     // when lines were last verified
	lastBatch   int           // how many lines were verified then
	verifyEvery time.Duration // verifyEvery (tests change it)
	flush       *time.Timer   // sets flushDue: the lines of a burst are verified
	flushArmed  bool

	poke              chan struct{} // wakes Run: ctx done, or a flag below set
	tickDue, flushDue atomic.Bool

	// The log as the last check saw it, and how many checks in a row
	// saw it so: a quiet log is left to the quiet probe (schedule).
	lastOff, lastQueue int64
	unchanged          int
	snap               pathSnap // the path, at the last check
	snapOK             bool
	more               bool // the last check saw a complete line unread

	buf []byte // scratch for fingerprints and newline scans
}

// longLine is a line longer than MaxLine that nxadm/tail hands over in
// pieces: all pieces carry the offset after the whole line.
type longLine struct {
	active bool
	start  int64
	end    int64
	remain int64  // bytes of the line not seen yet
	head   []byte // its first bytes, for the fingerprint of a first line
}

func newRunner(f *File) *runner {
	return &runner{
		f:           f,
		path:        f.path,
		log:         f.log,
		maxLine:     f.opts.MaxLine,
		chunk:       f.opts.MaxLine + 2, // +1 for a "\r", +1 so that a piece of exactly chunk bytes means "too long"
		rotateWait:  f.opts.RotateWait,
		verifyEvery: verifyEvery,
		buf:         make([]byte, 64<<10),
	}
}

func (r *runner) errorf(format string, args ...any) error {
	return fmt.Errorf("source: %s: "+format, append([]any{r.path}, args...)...)
}

// begin opens the log at the start of Run and decides where reading starts.
func (r *runner) begin() error {
	st, err := os.Stat(r.path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		// As checkPath does while the log is followed: one warning, and
		// the path is waited on as if missing until a regular file is
		// there (a FIFO would block the open, a device never end, a
		// directory is no log). Failing here instead made the daemon
		// retry, and log an error, every 10 s for ever.
		r.irregularPath(st.Mode())
		err = fs.ErrNotExist
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return r.errorf("%w", err)
	}
	var g *gen
	if err == nil {
		g, err = openGen(r.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return r.errorf("%w", err)
		}
	}
	start := r.f.start
	switch {
	case start.Resume != (Position{}):
		if pre := r.resume(g, start.Resume); pre != nil {
			r.queue = append(r.queue, pre)
		}
	case g != nil && !start.Since.IsZero() && r.f.opts.ParseTime != nil:
		off, err := r.seekSince(g, start.Since)
		if err != nil {
			r.log.Warn("cannot look for the start time; reading the whole log", "err", err)
			off = 0
		}
		g.off = off
		r.log.Info("starting at the first line of the time window", "since", start.Since, "offset", off)
	}
	if g != nil {
		r.queue = append(r.queue, g)
	}
	r.setOpen()
	if len(r.queue) == 0 {
		r.waiting = true
		if r.irregular == "" {
			r.log.Info("waiting for the log to appear")
		}
		return nil
	}
	r.log.Debug("following", "file", r.queue[0].name, "inode", r.queue[0].ino, "offset", r.queue[0].off)
	return r.ensureTail()
}

// resume places reading at the stored position p, given the file now at the
// path (g, nil if none). It returns the rotated file to read first, if any.
func (r *runner) resume(g *gen, p Position) *gen {
	if g != nil && g.ino == p.Inode {
		if p.Offset == 0 {
			return nil
		}
		if g.fp == p.Fingerprint && g.lastSize >= p.Offset && newlineBefore(g.f, p.Offset) {
			g.off = p.Offset
			r.log.Debug("resuming", "inode", g.ino, "offset", p.Offset)
			return nil
		}
		// The same file, truncated or rewritten while we were stopped
		// (copytruncate): the rest of the old content may be in the copy.
		if c := r.findCopy(p.Fingerprint, p.Offset, nil, g); c != nil {
			r.log.Info("the log was truncated while stopped; reading the rest of its copy first", "copy", c.name, "offset", p.Offset)
			return c
		}
		r.log.Warn("the log was truncated while stopped and no copy was found; reading it from the start: lines may have been missed", "offset", p.Offset)
		return nil
	}
	// Another file (or none) at the path: the log was rotated while we were
	// stopped. The old file is the one with the stored inode beside it.
	old := r.findBeside(func(c *gen) bool {
		return c.ino == p.Inode && c.fp == p.Fingerprint && c.lastSize >= p.Offset && newlineBefore(c.f, p.Offset)
	}, func(ino uint64) bool { return ino == p.Inode }, g)
	if old == nil {
		r.log.Warn("the log was rotated while stopped and the old file was not found beside it: lines may have been missed; reading the new log from the start", "inode", p.Inode, "offset", p.Offset)
		return nil
	}
	old.off = p.Offset
	old.rotated = true
	old.rotatedAt = time.Now()
	r.log.Info("the log was rotated while stopped; reading the rest of the old file first", "file", old.name, "offset", p.Offset)
	return old
}

// close ends the tail and closes every file.
func (r *runner) close() {
	r.stopTail()
	for _, g := range r.queue {
		g.f.Close()
	}
	r.queue = nil
	r.setOpen()
}

func (r *runner) setOpen() {
	r.f.mu.Lock()
	r.f.stats.Open = len(r.queue) > 0
	r.f.mu.Unlock()
}

// live returns the file still at the path, if any.
func (r *runner) live() *gen {
	if n := len(r.queue); n > 0 && !r.queue[n-1].rotated {
		return r.queue[n-1]
	}
	return nil
}

// check runs every checkEvery, also while lines wait to be sent and the tail
// is not read (sending): it looks for a rotation, a truncation, the end of
// a rotated file and a stalled tail. Rotations are so noticed (and the
// files pinned) even when the receiver is slow.
func (r *runner) check(sending bool) error {
	// The lines not verified yet are from queue[0]: settled first, before
	// anything may change the queue.
	if _, err := r.settle(); err != nil {
		return err
	}
	now := time.Now()
	r.more = false
	r.checkPath(now)
	for _, g := range append([]*gen(nil), r.queue...) {
		if g.copy {
			continue // a copy does not change
		}
		st, err := g.f.Stat()
		if err != nil {
			continue
		}
		size := st.Size()
		fp, _, err := fingerprint(g.f, r.buf)
		if err != nil {
			continue
		}
		cur := g == r.queue[0]
		switch {
		case size < g.lastSize, cur && size < g.off:
			r.truncated(g, "the file shrank")
			continue
		case g.fp != 0 && fp != g.fp:
			r.truncated(g, "the first line changed")
			continue
		case g.fp == 0:
			g.fp = fp
		}
		if size != g.lastSize {
			g.lastSize, g.grewAt = size, now
		}
	}
	if len(r.queue) == 0 {
		return nil
	}
	g := r.queue[0]
	if r.t != nil && !r.long.active {
		more, err := g.hasLine(g.lastSize, r.buf)
		if err != nil {
			more = false
		}
		r.more = more
		if g.rotated && !more && (g.copy || now.Sub(g.grewAt) >= r.rotateWait || now.Sub(g.rotatedAt) >= maxDrain) {
			r.finish(g)
			return r.ensureTail()
		}
		if !sending {
			r.checkStall(g, more, now)
		}
	}
	return r.ensureTail()
}

// checkStall restarts a tail that leaves a complete line unread: nxadm/tail
// can miss a wakeup (a write between its read at EOF and its inotify watch).
// A restart is exact: it reads again from the offset after the last line
// handed out.
func (r *runner) checkStall(g *gen, more bool, now time.Time) {
	limit := stallAfter
	if !r.tInotify {
		limit = stallPoll
	}
	switch {
	case !more:
		r.stuckSince = time.Time{}
	case r.stuckSince.IsZero() || r.moves != r.stuckMoves:
		r.stuckSince, r.stuckMoves = now, r.moves
	case now.Sub(r.stuckSince) >= limit:
		r.log.Debug("the tail left a line unread; restarting it", "offset", g.off)
		r.stopTail()
	}
}

// irregularPath notes that the path holds a file of mode m that is not
// regular, with a warning once for each kind in a row.
func (r *runner) irregularPath(m fs.FileMode) {
	if kind := fileKind(m); kind != r.irregular {
		r.irregular = kind
		r.log.Warn("the log's path holds no regular file; it is skipped until a regular file is there", "type", kind)
	}
}

// checkPath looks at what is at the path now.
func (r *runner) checkPath(now time.Time) {
	st, err := os.Stat(r.path)
	r.snap, r.snapOK = snapOf(st, err)
	live := r.live()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			if err.Error() != r.statErr {
				r.statErr = err.Error()
				r.log.Warn("cannot stat the log", "err", err)
			}
			return
		}
		r.statErr, r.irregular = "", ""
		if live != nil {
			live.rotated, live.rotatedAt = true, now
			r.log.Info("the log was removed or renamed; reading the rest of it", "inode", live.ino)
		}
		if len(r.queue) == 0 && !r.waiting {
			r.waiting = true
			r.log.Info("waiting for the log to appear")
		}
		return
	}
	r.statErr = ""
	if !st.Mode().IsRegular() {
		// A FIFO, a device, a directory: never opened (a FIFO would block
		// the open, a device never end). The file read so far, if any,
		// stays the live one; a regular file at the path is read again
		// once there is one.
		r.irregularPath(st.Mode())
		return
	}
	r.irregular = ""
	dev, ino := devIno(st)
	for i, g := range r.queue {
		if g.dev == dev && g.ino == ino {
			// Still the file we know, or again: one seen gone (renamed
			// away, or the path briefly missing while an administrator
			// put a link there) is the log again, read on, never left
			// and read anew.
			if g.rotated && !g.copy && i == len(r.queue)-1 {
				g.rotated = false
				r.log.Info("the log is back at its path; reading on", "inode", g.ino)
			}
			return
		}
	}
	g, err := openGen(r.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("cannot open the log", "err", err)
		}
		return
	}
	for _, o := range r.queue {
		if o.dev == g.dev && o.ino == g.ino {
			g.f.Close() // the path changed back between stat and open
			return
		}
	}
	if off, last, ok := r.leftAt(g); ok {
		g.off, g.last = off, last
		r.log.Info("the log is a file read before; reading on after the last line read", "inode", g.ino, "offset", off)
	}
	if live != nil {
		live.rotated, live.rotatedAt = true, now
		r.log.Info("the log was rotated; reading the rest of the old file first", "old_inode", live.ino, "inode", g.ino)
	} else if r.waiting {
		r.log.Info("the log appeared", "inode", g.ino)
	}
	r.waiting = false
	r.queue = append(r.queue, g)
	r.setOpen()
}

// finish drops queue[0], read to its end.
func (r *runner) finish(g *gen) {
	r.stopTail()
	if size, err := g.size(); err == nil && size > g.off {
		r.log.Debug("left a partial last line in the rotated file", "file", g.name, "bytes", size-g.off)
	}
	r.log.Debug("finished the rotated file", "file", g.name, "inode", g.ino, "offset", g.off)
	r.remember(g)
	g.f.Close()
	r.queue = r.queue[1:]
	r.setOpen()
	if len(r.queue) == 0 {
		r.checkPath(time.Now())
	}
}

// leftFile is a file read to its end and let go: where reading stopped.
type leftFile struct {
	dev, ino, fp uint64
	off          int64
	last         []byte
}

// maxLeft is how many files let go are remembered.
const maxLeft = 4

// remember notes where reading of g, let go, stopped.
func (r *runner) remember(g *gen) {
	if g.fp == 0 || g.off == 0 {
		return
	}
	if len(r.left) == maxLeft {
		r.left = r.left[1:]
	}
	r.left = append(r.left, leftFile{dev: g.dev, ino: g.ino, fp: g.fp, off: g.off, last: g.last})
}

// leftAt tells whether g, just opened at the path, is a file let go
// earlier with the same content (inode, first line, and a line ending
// where reading stopped): a log renamed away and back, or linked to, after
// it was read to its end. Its offset is where reading goes on: from its
// start, its lines would be read twice.
func (r *runner) leftAt(g *gen) (int64, []byte, bool) {
	for i, l := range r.left {
		if l.dev == g.dev && l.ino == g.ino && l.fp == g.fp && g.lastSize >= l.off && newlineBefore(g.f, l.off) {
			r.left = append(r.left[:i], r.left[i+1:]...)
			return l.off, l.last, true
		}
	}
	return 0, nil, false
}

// truncated handles g truncated or rewritten in place: the rest of its old
// content is read from a copy beside it when there is one (copytruncate),
// then g from its start.
func (r *runner) truncated(g *gen, why string) {
	cur := r.queue[0] == g
	if cur {
		r.stopTail()
	}
	oldOff, oldFP, oldLast := g.off, g.fp, g.last
	g.off, g.last, g.noNL = 0, nil, 0
	g.fp, _, _ = fingerprint(g.f, r.buf)
	if size, err := g.size(); err == nil {
		g.lastSize, g.grewAt = size, time.Now()
	}
	c := r.findCopy(oldFP, oldOff, oldLast, g)
	switch {
	case c != nil && c.lastSize > oldOff:
		c.off, c.last = oldOff, oldLast
		i := 0
		for r.queue[i] != g {
			i++
		}
		r.queue = append(r.queue[:i], append([]*gen{c}, r.queue[i:]...)...)
		r.log.Info("the log was truncated in place; reading the rest of its copy first", "why", why, "copy", c.name, "offset", oldOff)
	case c != nil:
		c.f.Close()
		r.log.Info("the log was truncated in place; its copy holds nothing unread", "why", why, "copy", c.name)
	case oldOff > 0 || !cur:
		r.log.Info("the log was truncated in place and no copy was found; reading it from the start (lines written just before the truncation may be lost)", "why", why, "offset", oldOff)
	}
}

// take handles one line from nxadm/tail.
func (r *runner) take(tl *tail.Line) error {
	r.moves++
	g := r.queue[0]
	if tl.Err != nil {
		return nil // rate limiter notices; no rate limiter is set
	}
	end := tl.SeekInfo.Offset
	n := int64(len(tl.Text))
	if r.long.active {
		if end != r.long.end || n > r.long.remain {
			r.resync(g, "the pieces of a long line do not add up")
			return nil
		}
		r.long.remain -= n
		if r.long.remain > 0 {
			return nil
		}
		l := r.long
		r.long = longLine{}
		return r.accept(g, l.start, l.end, nil, l.head)
	}
	if n >= int64(r.chunk) {
		// The first piece of a line longer than MaxLine. Every piece
		// carries the offset after the whole line, so the line's length is
		// known from where it started (our offset): the pieces are counted
		// away and never taken for lines.
		total := end - g.off - 1
		if total < n {
			r.resync(g, "a long line does not start where the last one ended")
			return nil
		}
		head := []byte(tl.Text[:min(len(tl.Text), fpLen)])
		if total == n {
			return r.accept(g, g.off, end, nil, head)
		}
		r.long = longLine{active: true, start: g.off, end: end, remain: total - n, head: head}
		return nil
	}
	if end-n-1 != g.off {
		r.resync(g, "a line does not start where the last one ended")
		return nil
	}
	raw := textOf(tl.Text)
	return r.accept(g, g.off, end, raw, raw)
}

// textOf returns the bytes of s, a line's text from nxadm/tail, without
// copying them: nxadm/tail makes a new string for each line (with
// CompleteLines, from its line buffer) and keeps no reference to it once
// the line is sent, so those bytes are ours alone, and Line.Text is never
// written to (see Line). A copy would double the bytes allocated per line.
func textOf(s string) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// accept queues the line [start, end) of g (raw nil: skipped as too long;
// head: its first bytes as read) to be handed out once it is known that g
// still held the content it was read from (see settle).
func (r *runner) accept(g *gen, start, end int64, raw, head []byte) error {
	r.failures = 0
	if r.unv > 0 && (r.vgen != g || g.fp == 0) {
		// Not expected (lines wait for verification only while g's first
		// line is known): verify them first, to keep the order.
		if ok, err := r.settle(); !ok || err != nil {
			return err // this line was dropped with them
		}
	}
	if g.fp == 0 {
		// The first line of g is not known yet (it was not complete when
		// g was opened or found truncated): this line is checked at once,
		// and the fingerprint learnt.
		fp, first, err := fingerprint(g.f, r.buf)
		if err != nil {
			r.resync(g, "cannot read the first line: "+err.Error())
			return nil
		}
		if start == 0 {
			// The first line of this content: the file must begin with it.
			k := min(len(first), len(head))
			if fp == 0 || string(first[:k]) != string(head[:k]) || (raw != nil && len(first) != min(len(raw), fpLen)) {
				r.truncated(g, "the first line changed")
				return r.ensureTail()
			}
		}
		g.fp = fp
	} else {
		if r.unv == 0 {
			r.vgen, r.vOff, r.vLast = g, g.off, g.last
		}
		r.unv++
	}
	g.off, g.last = end, raw
	l := Line{Path: r.path, Pos: Position{Path: r.path, Inode: g.ino, Offset: end, Fingerprint: g.fp}}
	text := raw
	if n := len(text); n > 0 && text[n-1] == '\r' {
		text = text[:n-1]
	}
	if raw == nil || len(text) > r.maxLine {
		l.Skipped = true
	} else {
		l.Text = text
	}
	if len(r.pending) == cap(r.pending) {
		p := make([]Line, len(r.pending), len(r.pending)+pendingChunk)
		copy(p, r.pending)
		r.pending = p
	}
	r.pending = append(r.pending, l)
	if r.unv == 0 {
		return nil
	}
	switch {
	case r.unv >= verifyLines:
		_, err := r.settle()
		return err
	case !r.flushArmed:
		// The first line since the last verification. time.Since reads
		// only the monotonic clock (half the cost of Now, and no read per
		// line).
		d := time.Since(r.lastVerify)
		if d < r.verifyEvery && (r.lastBatch > 1 || d < sparseGap) {
			r.flush.Reset(r.verifyEvery - d)
			r.flushArmed = true
			return nil
		}
		_, err := r.settle()
		return err
	}
	return nil
}

// settle verifies the lines accepted since the last verification: that
// the file they were read from still holds the content they were read
// from. It reports whether they were; if not, they are dropped and the
// truncation handled, and the error is the one of starting a tail again.
//
// Why one check per batch is enough. A file truncated and written again
// in place under the reader (copytruncate, or a writer that truncates)
// can hand nxadm/tail new content at offsets that continue the old ones:
// the offsets of the lines cannot tell. Its first line tells: a content
// that reaches past an offset > 0 was written from its start, so by the
// time any line of the new content could be read, the file's first line
// is the new one (its fingerprint differs; a content whose first line is
// the same to the byte cannot be told apart, per line or per batch). So
// if the first line is still the old one now, after the last line of the
// batch was read, every line of the batch was read from the old content
// (lines nxadm/tail read ahead before the truncation are rightly the old
// content). If it changed, some of them may be new content: the whole
// batch is dropped, the offset goes back to before it, and truncated()
// reads the rest of the old content from its copy, then the new content
// from its start, as a per-line check would have. No line is lost or read
// twice: nothing of the batch was handed out.
func (r *runner) settle() (bool, error) {
	if r.unv == 0 {
		return true, nil
	}
	g := r.vgen
	r.lastVerify = time.Now()
	fp, _, err := fingerprint(g.f, r.buf)
	if err == nil && fp == g.fp {
		r.lastBatch = r.unv
		r.unv, r.vgen = 0, nil
		return true, nil
	}
	r.pending = r.pending[:len(r.pending)-r.unv]
	r.unv, r.vgen = 0, nil
	g.off, g.last, g.noNL = r.vOff, r.vLast, 0
	if err != nil {
		r.resync(g, "cannot read the first line: "+err.Error())
	} else {
		r.truncated(g, "the first line changed")
	}
	return false, r.ensureTail()
}

// sent takes note that batch, the verified lines at the front of pending,
// was handed out.
func (r *runner) sent(batch []Line) {
	r.pending = r.pending[len(batch):]
	r.moves++
	var skipped int64
	for i := range batch {
		if batch[i].Skipped {
			skipped++
		}
	}
	r.f.mu.Lock()
	r.f.stats.Lines += int64(len(batch)) - skipped
	r.f.stats.Skipped += skipped
	r.f.stats.Pos = batch[len(batch)-1].Pos
	r.f.mu.Unlock()
}

// resync drops the tail after something did not add up and starts again
// from the offset after the last line accepted, or, if the file was
// truncated meanwhile (nxadm/tail then reopens it and reads from its start
// by itself), from the copy or the start.
func (r *runner) resync(g *gen, why string) {
	if ok, _ := r.settle(); !ok {
		return // found truncated, and handled
	}
	r.stopTail()
	if size, err := g.size(); err == nil && size < g.off {
		r.truncated(g, "the file shrank")
	} else if fp, _, err := fingerprint(g.f, r.buf); err == nil && g.fp != 0 && fp != g.fp {
		r.truncated(g, "the first line changed")
	} else {
		r.log.Warn("lost track of the line boundaries; reading again from the last position", "why", why, "offset", g.off)
		r.restartAt = time.Now().Add(checkEvery)
	}
}
