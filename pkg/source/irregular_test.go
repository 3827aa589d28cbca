package source

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What a log path can hold besides a regular file: a FIFO, a device, a
// directory, a symbolic link.

// waitLog waits until the File has logged a record with all the words.
func (r *running) waitLog(words ...string) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for r.rec.count(words...) == 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("nothing logged with %q", words)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// replace puts a new name at path in one rename, as mv and ln -sfT do:
// create makes it at the temporary name it is given.
func replace(t *testing.T, path string, create func(tmp string) error) {
	t.Helper()
	tmp := path + ".new"
	if err := create(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func symlinkTo(target string) func(string) error {
	return func(tmp string) error { return os.Symlink(target, tmp) }
}

func mkfifo(tmp string) error { return syscall.Mkfifo(tmp, 0o644) }

// At the start, a path that holds no regular file gets one warning that
// says what it holds, and is waited on like a missing log (a FIFO is not
// opened): Run does not fail, which made the daemon retry and log an
// error every 10 s. A regular file put there later is read.
func TestNotARegularFileAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, kind string
		make       func(path string) (undo func() error, err error)
	}{
		{"dir", "a directory", func(p string) (func() error, error) {
			return func() error { return os.Remove(p) }, os.Mkdir(p, 0o755)
		}},
		{"fifo", "a named pipe (FIFO)", func(p string) (func() error, error) {
			return func() error { return os.Remove(p) }, mkfifo(p)
		}},
		{"sock", "a socket", func(p string) (func() error, error) {
			ln, err := net.Listen("unix", p)
			if err != nil {
				return nil, err
			}
			return ln.Close, nil // closing the listener removes the socket
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			undo, err := tc.make(path)
			if err != nil {
				t.Fatal(err)
			}
			r := startFile(t, path, Start{}, FileOptions{})
			r.waitLog("WARN", "holds no regular file", "type="+tc.kind)
			r.none(1200 * time.Millisecond) // more than a check of a quiet log
			if n := r.rec.count("holds no regular file"); n != 1 {
				t.Errorf("%d warnings, want 1", n)
			}
			if n := r.rec.count("waiting for the log to appear"); n != 0 {
				t.Errorf("%d records say the log is missing; it is not", n)
			}
			if err := undo(); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, numbered(0, 2))
			equal(t, r.texts(2, wait), numberedList(0, 2))
		})
	}
}

// openGen fails at once on a FIFO: the path may have become one since it
// was looked at, and a plain open would wait for a writer.
func TestOpenGenDoesNotBlockOnFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := mkfifo(path); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		g, err := openGen(path)
		if g != nil {
			g.f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.HasSuffix(err.Error(), "not a regular file but a named pipe (FIFO)") {
			t.Fatalf("got %v", err)
		}
	case <-time.After(wait):
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil { // let the open return
			w.Close()
		}
		t.Fatal("openGen waits for a writer of the FIFO")
	}
}

// The log replaced by a FIFO while followed: one warning, the FIFO never
// opened, the old file still read; a regular file at the path is read
// from its start.
func TestLogReplacedByFIFO(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "mail.log")
		writeFile(t, path, numbered(0, 3))
		r := startFile(t, path, Start{}, FileOptions{Poll: poll, RotateWait: 200 * time.Millisecond})
		equal(t, r.texts(3, wait), numberedList(0, 3))
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		replace(t, path, mkfifo)
		r.waitLog("WARN", "holds no regular file", "type=a named pipe (FIFO)")
		// A writer that has not reopened its log yet: still read.
		appendTo(t, path+".1", numbered(3, 5))
		equal(t, r.texts(2, wait), numberedList(3, 5))
		// Nobody opened the FIFO: a writer that does not wait finds no
		// reader.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); !errors.Is(err, syscall.ENXIO) {
			if err == nil {
				w.Close()
			}
			t.Fatalf("opening the FIFO to write: %v, want ENXIO (no reader)", err)
		}
		r.none(1200 * time.Millisecond) // more than a check of a quiet log
		if n := r.rec.count("holds no regular file"); n != 1 {
			t.Errorf("%d warnings about the FIFO, want 1", n)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, numbered(5, 8))
		equal(t, r.texts(3, wait), numberedList(5, 8))
		r.none(300 * time.Millisecond)
	})
}

// A symbolic link at the path is followed, and a new target is a rotation
// to it. A link to a device is skipped, a link to any regular file read,
// a dangling link waited for.
func TestSymlinkedLog(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "mail.log")
		writeFile(t, filepath.Join(dir, "a.log"), numbered(0, 2))
		if err := os.Symlink("a.log", path); err != nil {
			t.Fatal(err)
		}
		r := startFile(t, path, Start{}, FileOptions{Poll: poll, RotateWait: 200 * time.Millisecond})
		equal(t, r.texts(2, wait), numberedList(0, 2))
		appendTo(t, path, numbered(2, 3)) // through the link
		equal(t, r.texts(1, wait), numberedList(2, 3))

		// Another target: read from its start, once the old one is done.
		writeFile(t, filepath.Join(dir, "b.log"), numbered(100, 102))
		replace(t, path, symlinkTo("b.log"))
		equal(t, r.texts(2, wait), numberedList(100, 102))
		appendTo(t, path, numbered(102, 103))
		equal(t, r.texts(1, wait), numberedList(102, 103))

		// A device: never read (it would never end).
		if st, err := os.Stat("/dev/zero"); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			replace(t, path, symlinkTo("/dev/zero"))
			r.waitLog("WARN", "holds no regular file", "type=a character device")
			r.none(300 * time.Millisecond)
		} else {
			t.Log("/dev/zero is no character device here: a link to a device not tried")
		}

		// A file that is no log, root's only: read like a log.
		secret := filepath.Join(dir, "shadow")
		if err := os.WriteFile(secret, []byte("root:$y$j9T$salt$hash:19700:0:99999:7:::\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		replace(t, path, symlinkTo(secret))
		equal(t, r.texts(1, wait), []string{"root:$y$j9T$salt$hash:19700:0:99999:7:::"})

		// A dangling link: waited for, like a missing log.
		replace(t, path, symlinkTo("c.log"))
		r.waitLog("INFO", "waiting for the log to appear")
		writeFile(t, filepath.Join(dir, "c.log"), numbered(200, 201))
		equal(t, r.texts(1, wait), numberedList(200, 201))
		r.none(300 * time.Millisecond)
	})
}

// The log gone from its path and back, the same file: renamed away and
// back, moved with a link left in its place in two steps (the path is
// missing in between), or back only after it was read to its end and let
// go. Its lines are read on, never again from its start.
func TestLogBackAtItsPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		away  func(t *testing.T, path string) (back func())
		letGo bool // back only once the file was let go
		said  string
	}{
		{name: "renamed away and back", away: func(t *testing.T, path string) func() {
			mustRename(t, path, path+".tmp")
			return func() { mustRename(t, path+".tmp", path) }
		}, said: "the log is back at its path"},
		{name: "moved and linked", away: func(t *testing.T, path string) func() {
			mustRename(t, path, filepath.Join(filepath.Dir(path), "real.log"))
			return func() {
				if err := os.Symlink("real.log", path); err != nil {
					t.Fatal(err)
				}
			}
		}, said: "the log is back at its path"},
		{name: "back after it was let go", away: func(t *testing.T, path string) func() {
			mustRename(t, path, path+".tmp")
			return func() { mustRename(t, path+".tmp", path) }
		}, letGo: true, said: "the log is a file read before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			both(t, func(t *testing.T, poll bool) {
				path := filepath.Join(t.TempDir(), "mail.log")
				writeFile(t, path, numbered(0, 3))
				r := startFile(t, path, Start{}, FileOptions{Poll: poll, RotateWait: 200 * time.Millisecond})
				equal(t, r.texts(3, wait), numberedList(0, 3))
				back := tc.away(t, path)
				r.waitLog("the log was removed or renamed")
				if tc.letGo {
					r.waitLog("waiting for the log to appear")
				}
				back()
				r.waitLog(tc.said)
				r.none(600 * time.Millisecond) // a file read anew would be read after RotateWait
				appendTo(t, path, numbered(3, 4))
				equal(t, r.texts(1, wait), numberedList(3, 4))
				r.none(300 * time.Millisecond)
			})
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// openGen leaves a regular file in blocking mode.
func TestOpenGenBlocking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, "x\n")
	g, err := openGen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.f.Close()
	rc, err := g.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) })
	if ferr != nil || flags&unix.O_NONBLOCK != 0 {
		t.Fatalf("flags %#x, %v: O_NONBLOCK set", flags, ferr)
	}
}
