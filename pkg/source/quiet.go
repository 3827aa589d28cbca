package source

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// quietSettle is how long ago a log must last have changed before it is
// left to the quiet probe: a file changed within one tick of the kernel's
// coarse clock may change again with the same time stamps.
const quietSettle = time.Second

// ProbeEvery is the period of the process's probe (see OnProbe): the
// paths of quiet logs are looked at by it, so a rotation, truncation or
// new file at the path of a log that has been quiet is seen within one and
// a half ProbeEvery. Its instants are whole multiples of it (see aligned).
const ProbeEvery = 2 * time.Second

// quiet is the process's probe.
var quiet quietSet

// OnProbe calls fn at each of the process's probes, from the probe's
// goroutine, until stop is called (a probe that began before may still
// call it once). fn must be quick and must not block: it is for checks
// that decide whether a goroutine of its own has work, as the quiet logs'
// checks are. An idle daemon so wakes once every ProbeEvery for all such
// checks together, not once for each.
func OnProbe(fn func()) (stop func()) {
	q := &quiet
	key := new(int) // a distinct key for each call
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fns == nil {
		q.fns = make(map[*int]func())
	}
	q.fns[key] = fn
	q.arm()
	return func() {
		q.mu.Lock()
		delete(q.fns, key)
		q.mu.Unlock()
	}
}

// quietSet is the process's probe: at whole multiples of ProbeEvery it
// calls the functions given to OnProbe, then stats the paths of the quiet
// logs (see runner.schedule), one stat(2) each, all from one goroutine. A
// runner whose path shows what its last check saw is left asleep; one
// whose path shows anything else (another file, another size, time stamp
// or mode, an error) is woken for a full check.
type quietSet struct {
	mu    sync.Mutex
	logs  map[*runner]pathSnap
	fns   map[*int]func()
	timer *time.Timer // armed while logs or fns is not empty
}

// arm starts the timer if it is not running; q.mu is held.
func (q *quietSet) arm() {
	if q.timer == nil {
		q.timer = time.AfterFunc(aligned(time.Now(), ProbeEvery), q.probe)
	}
}

// add leaves r's path to the probe, as snap saw it.
func (q *quietSet) add(r *runner, snap pathSnap) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.logs == nil {
		q.logs = make(map[*runner]pathSnap)
	}
	q.logs[r] = snap
	q.arm()
}

// remove takes r out of the probe, if it is in it.
func (q *quietSet) remove(r *runner) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.logs, r)
}

// probe runs the functions, stats every path and wakes the runners whose
// path changed. Both run without the lock, so that a runner or function
// coming or going never waits for them.
func (q *quietSet) probe() {
	q.mu.Lock()
	type entry struct {
		r    *runner
		snap pathSnap
	}
	logs := make([]entry, 0, len(q.logs))
	for r, s := range q.logs {
		logs = append(logs, entry{r, s})
	}
	fns := make([]func(), 0, len(q.fns))
	for _, fn := range q.fns {
		fns = append(fns, fn)
	}
	q.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	var changed []*runner
	for _, e := range logs {
		if snapPath(e.r.path) != e.snap {
			changed = append(changed, e.r)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range changed {
		if _, ok := q.logs[r]; ok {
			delete(q.logs, r)
			r.tickDue.Store(true)
			r.wake()
		}
	}
	if len(q.logs) == 0 && len(q.fns) == 0 {
		q.timer = nil
		return
	}
	q.timer.Reset(aligned(time.Now(), ProbeEvery))
}

// pathSnap is what a stat of a log's path showed: enough to tell that
// nothing at all changed there. A write changes the size or the time
// stamps, a rename or a new file the inode, a truncation the size and the
// time stamps.
type pathSnap struct {
	failed       bool          // the stat failed
	errno        syscall.Errno // with this error
	dev, ino     uint64
	mode         uint32
	size         int64
	mtime, ctime syscall.Timespec
}

// snapPath stats path with os.Stat (a symbolic link is followed), as
// checkPath does; a failure snapOf cannot tell apart is a failure all the
// same.
func snapPath(path string) pathSnap {
	s, ok := snapOf(os.Stat(path))
	if !ok {
		return pathSnap{failed: true}
	}
	return s
}

// snapOf is the pathSnap of os.Stat's result; ok is false when it cannot
// tell (an error that is no errno, or no Stat_t).
func snapOf(st fs.FileInfo, err error) (snap pathSnap, ok bool) {
	if err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return pathSnap{}, false
		}
		return pathSnap{failed: true, errno: errno}, true
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return pathSnap{}, false
	}
	return pathSnap{dev: s.Dev, ino: s.Ino, mode: s.Mode, size: s.Size, mtime: s.Mtim, ctime: s.Ctim}, true
}

// settled reports whether the file s shows last changed quietSettle or
// longer before now (or as far after it: a clock set back).
func (s pathSnap) settled(now time.Time) bool {
	d := now.Sub(time.Unix(s.ctime.Unix())) // ctime: any change, mtime's too
	return d >= quietSettle || d <= -quietSettle
}
