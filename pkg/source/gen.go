package source

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// gen is one file (one inode) to read: the log, a rotated log, or a copy
// left by copytruncate. It is pinned by an open descriptor for as long as it
// may be read, so its inode cannot be reused meanwhile.
type gen struct {
	f        *os.File
	name     string // the name it was found under, for messages
	dev, ino uint64
	off      int64  // the offset after the last line handed out: reading goes on here
	fp       uint64 // fingerprint of its first line (0: not known yet)
	// last is the line before off as read (without its newline; nil when
	// it was skipped or unknown): its end recognises the copy of g. It is
	// the text handed out, never written again.
	last []byte

	rotated   bool      // no longer the file at the path: read to its end, then drop
	copy      bool      // a copytruncate copy: it does not grow, read to its end at once
	rotatedAt time.Time // when it was seen rotated
	lastSize  int64     // its size at the last check
	grewAt    time.Time // when lastSize last changed
	noNL      int64     // [off, noNL) is known to hold no newline
	noInotify bool      // inotify failed on it: nxadm/tail polls it
}

// openGen opens name, which must be a regular file. It is opened without
// blocking and checked once open: a path that became a FIFO since it was
// looked at would otherwise block the open until some writer opened it.
// Reads of the regular file then block as usual.
func openGen(name string) (*gen, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, notRegular(st.Mode()))
	}
	if err := setBlocking(f); err != nil {
		f.Close()
		return nil, err
	}
	g := &gen{f: f, name: name, lastSize: st.Size(), grewAt: time.Now()}
	g.dev, g.ino = devIno(st)
	if g.fp, _, err = fingerprint(f, make([]byte, fpLen)); err != nil {
		f.Close()
		return nil, err
	}
	return g, nil
}

// setBlocking clears O_NONBLOCK on f, a regular file opened with it (some
// network and FUSE file systems heed it).
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// notRegular is the error for a log path that holds something other than
// a regular file.
func notRegular(m fs.FileMode) error {
	return fmt.Errorf("not a regular file but %s", fileKind(m))
}

// fileKind names the type of a file that is not regular, for messages.
func fileKind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a file of type " + m.Type().String()
}

// devIno returns the device and inode of a file.
func devIno(st fs.FileInfo) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}

func (g *gen) size() (int64, error) {
	st, err := g.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// signature returns the last bytes before an offset after the line last
// (without its newline): at most sigLen, ending in its newline.
func signature(last []byte) []byte {
	if last == nil {
		return nil
	}
	return append(append([]byte(nil), last[max(0, len(last)-(sigLen-1)):]...), '\n')
}

// hasLine tells whether [g.off, size) holds a newline, that is a complete
// line not read yet. What it scanned without finding one is remembered.
func (g *gen) hasLine(size int64, buf []byte) (bool, error) {
	from := max(g.off, g.noNL)
	for from < size {
		n, err := g.f.ReadAt(buf[:min(int64(len(buf)), size-from)], from)
		if bytes.IndexByte(buf[:n], '\n') >= 0 {
			return true, nil
		}
		from += int64(n)
		g.noNL = from
		if err != nil || n == 0 {
			if err == io.EOF || n == 0 {
				break
			}
			return false, err
		}
	}
	return false, nil
}

// fingerprint returns the fingerprint of the first line of f (see
// Position.Fingerprint) and the bytes it hashed, in buf (at least fpLen).
func fingerprint(f io.ReaderAt, buf []byte) (uint64, []byte, error) {
	n, err := f.ReadAt(buf[:fpLen], 0)
	if err != nil && err != io.EOF {
		return 0, nil, err
	}
	b := buf[:n]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else if n < fpLen {
		return 0, nil, nil
	}
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64(), b, nil
}

// newlineBefore tells whether off is the start of a line of f.
func newlineBefore(f io.ReaderAt, off int64) bool {
	if off == 0 {
		return true
	}
	var b [1]byte
	_, err := f.ReadAt(b[:], off-1)
	return err == nil && b[0] == '\n'
}

// findCopy looks beside the log for the copy of a content whose first line
// has fingerprint fp and that was read up to off (the line before off being
// last, if known): what copytruncate leaves. The copy must be at least off
// long. exclude is a file not to consider besides those in the queue.
func (r *runner) findCopy(fp uint64, off int64, last []byte, exclude *gen) *gen {
	if fp == 0 {
		return nil
	}
	sig := signature(last)
	return r.findBeside(func(c *gen) bool {
		if c.fp != fp || c.lastSize < off || !newlineBefore(c.f, off) {
			return false
		}
		if len(sig) > 0 {
			got := make([]byte, len(sig))
			if _, err := c.f.ReadAt(got, off-int64(len(sig))); err != nil || !bytes.Equal(got, sig) {
				return false
			}
		}
		c.copy, c.rotated, c.rotatedAt, c.off = true, true, time.Now(), off
		return true
	}, nil, exclude)
}

// findBeside returns the first file beside the log (in its directory, its
// name starting with the log's name, "name.1" first) that want accepts, or
// nil. quick, if set, filters by inode before a file is opened. Files in the
// queue and exclude are not considered. The file returned is open.
func (r *runner) findBeside(want func(*gen) bool, quick func(ino uint64) bool, exclude *gen) *gen {
	dir, base := filepath.Dir(r.path), filepath.Base(r.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.log.Debug("cannot list the log's directory", "err", err)
		return nil
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); n != base && strings.HasPrefix(n, base) && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.SliceStable(names, func(i, j int) bool { return names[i] == base+".1" && names[j] != base+".1" })
	known := func(dev, ino uint64) bool {
		if exclude != nil && exclude.dev == dev && exclude.ino == ino {
			return true
		}
		for _, g := range r.queue {
			if g.dev == dev && g.ino == ino {
				return true
			}
		}
		return false
	}
	for _, n := range names {
		full := filepath.Join(dir, n)
		st, err := os.Lstat(full)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if dev, ino := devIno(st); known(dev, ino) || (quick != nil && !quick(ino)) {
			continue
		}
		c, err := openGen(full)
		if err != nil {
			continue
		}
		if !known(c.dev, c.ino) && want(c) {
			return c
		}
		c.f.Close()
	}
	return nil
}
