package source

// How nxadm/tail is used, and why this way.
//
// nxadm/tail (v1.4.11) follows a file by name: its watchers stat the name
// and its reopen logic opens the name again. Around a rename rotation that
// is where it loses and duplicates lines (nxadm/tail#72, #74, PR #73): a
// write event whose stat already sees the new, smaller file at the name is
// taken for a truncation and the name is reopened from its start, losing
// the rest of the old file; on a rename or delete it reopens the name at
// once, without reading what the writer still appended to the old file;
// and a truncation read as such and a rename close together make it read
// the start of the new file twice. Tell() is not an offset one can keep
// across those reopens.
//
// So here nxadm/tail never decides anything about rotation:
//
//   - It runs with ReOpen off, on one file at a time, by the name
//     /proc/self/fd/N of a descriptor this package holds open. That name can
//     only ever mean that one inode, renamed or deleted or not: its stat
//     cannot see another file, and the reopen it still does on a
//     truncation opens the same file.
//   - It starts at an offset this package keeps (Location), and every line
//     it hands over is checked against that offset: a line must start
//     where the last one ended (line length from SeekInfo.Offset, which is
//     exact for the descriptor it reads). Anything else stops that tail and
//     starts a new one at the kept offset.
//   - Rotation and truncation are seen here (runner.check: the inode at the
//     path, the size and the first line of the file being read). The old
//     file is read to its end and left only when it has not grown for
//     RotateWait; then the next file is read from its start.
//   - MaxLineSize is set so that a line longer than MaxLine comes in pieces
//     that all carry the offset after the whole line: the pieces are
//     counted away (see runner.take), never handed out.
//
// A tail that stops by itself (nxadm/tail gives up its file on a rename or a
// delete with ReOpen off) is simply started again on the same descriptor.
//
// nxadm/tail's inotify watches go through one shared tracker keyed by name.
// Tail.Cleanup after Stop removes the watch a second time and leaves the
// tracker's count for that name at -1, after which no later watch of the
// name is ever added (nxadm/tail#18); and the watch goroutine of a stopped
// tail removes its watch a moment after Stop returns. So Cleanup is not
// called: after Stop this package waits until the tracker has dropped the
// name before the descriptor (and so the name /proc/self/fd/N) may be
// reused. Two watches of one inode under two names would share one inotify
// watch descriptor, so a file already watched by another File of this
// process is polled instead.

import (
	"io"
	"log"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nxadm/tail"
	"github.com/nxadm/tail/watch"
)

// unusedWatchName is a name no file has: removing its (absent) watch starts
// nxadm/tail's shared inotify tracker without watching anything.
const unusedWatchName = "/proc/self/fd/-1"

var (
	inotifyOnce sync.Once
	inotifyOK   bool

	claimsMu sync.Mutex
	claims   = map[[2]uint64]bool{} // inodes watched with inotify by some File
)

// inotifyUsable starts nxadm/tail's inotify tracker once, after checking
// that an inotify instance can be made (the tracker exits the process when
// it cannot). Starting it here orders its setup before watchReleased reads
// it.
func inotifyUsable() bool {
	inotifyOnce.Do(func() {
		fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
		if err != nil {
			return
		}
		syscall.Close(fd)
		_ = watch.RemoveWatch(unusedWatchName)
		inotifyOK = true
	})
	return inotifyOK
}

func claimInotify(dev, ino uint64) bool {
	claimsMu.Lock()
	defer claimsMu.Unlock()
	k := [2]uint64{dev, ino}
	if claims[k] {
		return false
	}
	claims[k] = true
	return true
}

func releaseInotify(dev, ino uint64) {
	claimsMu.Lock()
	delete(claims, [2]uint64{dev, ino})
	claimsMu.Unlock()
}

// watchReleased tells whether nxadm/tail's tracker no longer knows name.
func watchReleased(name string) bool {
	return watch.Events(name) == nil
}

// tailLog passes nxadm/tail's messages on at Debug.
type tailLog struct{ r *runner }

func (w tailLog) Write(p []byte) (int, error) {
	w.r.log.Debug("nxadm/tail", "said", strings.TrimSpace(string(p)))
	return len(p), nil
}

// ensureTail starts a tail on queue[0] if none runs (and a failure's pause
// is over).
func (r *runner) ensureTail() error {
	if r.t != nil || len(r.queue) == 0 || time.Now().Before(r.restartAt) {
		return nil
	}
	err := r.startTail(r.queue[0])
	if err == nil {
		return nil
	}
	r.failures++
	r.log.Warn("cannot follow the log", "err", err)
	if r.failures >= maxFails {
		return r.errorf("%w", err)
	}
	r.restartAt = time.Now().Add(time.Second)
	return nil
}

// startTail starts nxadm/tail on g at g.off.
func (r *runner) startTail(g *gen) error {
	key := "/proc/self/fd/" + strconv.FormatUint(uint64(g.f.Fd()), 10)
	usable := inotifyUsable()
	if !usable && !r.f.opts.Poll && !r.pollWarned {
		r.pollWarned = true
		r.log.Warn("cannot use inotify; polling the log")
	}
	inotify := !r.f.opts.Poll && !g.noInotify && usable && claimInotify(g.dev, g.ino)
	t, err := tail.TailFile(key, tail.Config{
		Location:  &tail.SeekInfo{Offset: g.off, Whence: io.SeekStart},
		ReOpen:    false,
		MustExist: true,
		// Pipe only spares nxadm/tail a Tell (an lseek) before each line
		// whose result it throws away (v1.4.11, tailFileSync): with
		// CompleteLines it never seeks back over a partial line, and
		// the offset of each line is still told (SeekInfo, sendLine).
		Pipe:          true,
		Poll:          !inotify,
		Follow:        true,
		CompleteLines: true,
		MaxLineSize:   r.chunk,
		Logger:        log.New(tailLog{r}, "", 0),
	})
	if err != nil {
		if inotify {
			releaseInotify(g.dev, g.ino)
		}
		return err
	}
	r.t, r.tKey, r.tInotify, r.tDev, r.tIno = t, key, inotify, g.dev, g.ino
	lines, stop := make(chan *tail.Line, relayLines), make(chan struct{})
	go relay(t.Lines, lines, stop)
	r.tLines, r.tStop = lines, stop
	r.long = longLine{}
	r.stuckSince = time.Time{}
	return nil
}

// relayLines is the buffer between a tail and Run.
const relayLines = 512

// relay passes the lines of a tail (in, nxadm/tail's unbuffered Lines) on
// to Run through a buffer (out), so that nxadm/tail hands each line over as
// soon as it has read it, as to a bare reader, whatever Run is doing
// meanwhile (verifying, sending a batch, or not scheduled). It closes out
// when in is closed; it ends early when stop is closed (the tail stopped:
// its lines not taken yet are dropped).
func relay(in <-chan *tail.Line, out chan<- *tail.Line, stop <-chan struct{}) {
	defer close(out)
	for tl := range in {
		select {
		case out <- tl:
			continue // the usual case, without the select below
		default:
		}
		select {
		case out <- tl:
		case <-stop:
			return
		}
	}
}

// stopTail stops the running tail, if any, and waits until its inotify watch
// is gone. Lines it had not handed over are dropped: the next tail reads
// them again from the kept offset.
func (r *runner) stopTail() {
	if r.t == nil {
		return
	}
	_ = r.t.Stop()
	r.releaseTail()
}

// releaseTail forgets the stopped tail.
func (r *runner) releaseTail() {
	if r.tInotify {
		deadline := time.Now().Add(5 * time.Second)
		for !watchReleased(r.tKey) {
			if time.Now().After(deadline) {
				r.log.Warn("nxadm/tail kept its inotify watch", "name", r.tKey)
				break
			}
			time.Sleep(time.Millisecond)
		}
		releaseInotify(r.tDev, r.tIno)
	}
	close(r.tStop)
	r.t, r.tLines, r.tStop, r.tInotify = nil, nil, nil, false
	r.long = longLine{}
	r.stuckSince = time.Time{}
}

// tailEnded handles a tail that stopped by itself (its Lines closed).
func (r *runner) tailEnded() error {
	err := r.t.Wait()
	wasInotify := r.tInotify
	r.releaseTail()
	if err != nil {
		r.failures++
		r.log.Warn("following the log failed", "err", err)
		if wasInotify && len(r.queue) > 0 {
			r.queue[0].noInotify = true
		}
		if r.failures >= maxFails {
			return r.errorf("%w", err)
		}
		r.restartAt = time.Now().Add(time.Second)
		return nil
	}
	// With ReOpen off, nxadm/tail gives up a file that was renamed or
	// deleted. It is still ours (by descriptor): read on, and see what the
	// path holds now.
	r.checkPath(time.Now())
	return r.ensureTail()
}
