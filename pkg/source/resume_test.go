package source

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readPos runs a File on path until it has handed out n lines and returns
// the position after line k (1-based): as if the store had saved that one.
func readPos(t *testing.T, path string, n, k int) Position {
	t.Helper()
	r := startFile(t, path, Start{}, FileOptions{})
	var pos Position
	for i := 1; i <= n; i++ {
		l := r.next(wait)
		if i == k {
			pos = l.Pos
		}
	}
	r.stop()
	return pos
}

func TestResumeAtPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, numbered(0, 10))
	pos := readPos(t, path, 10, 6)
	appendTo(t, path, numbered(10, 12))
	r := startFile(t, path, Start{Resume: pos, Since: time.Now()}, FileOptions{})
	equal(t, r.texts(6, wait), numberedList(6, 12))
	r.none(300 * time.Millisecond)
	appendTo(t, path, numbered(12, 13))
	equal(t, r.texts(1, wait), numberedList(12, 13))
	if n := r.rec.count("WARN"); n != 0 {
		t.Fatalf("%d warnings", n)
	}
}

func TestResumeAfterRotationWhileStopped(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	writeFile(t, path, numbered(0, 10))
	pos := readPos(t, path, 10, 7)
	// While stopped: more lines, a rename rotation, the writer still
	// appending to the old file, a new log, and an older rotated file.
	appendTo(t, path, numbered(10, 15))
	writeFile(t, path+".2", "older rotated file\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", numbered(15, 18))
	writeFile(t, path, numbered(18, 25))
	r := startFile(t, path, Start{Resume: pos}, FileOptions{RotateWait: 200 * time.Millisecond})
	equal(t, r.texts(18, wait), numberedList(7, 25))
	r.none(300 * time.Millisecond)
	appendTo(t, path, numbered(25, 26))
	equal(t, r.texts(1, wait), numberedList(25, 26))
	if n := r.rec.count("INFO", "rotated while stopped", "mail.log.1"); n != 1 {
		t.Fatalf("%d rotated-while-stopped messages", n)
	}
}

func TestResumeRotatedFileGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	writeFile(t, path, numbered(0, 10))
	pos := readPos(t, path, 10, 4)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path+".1", "another file\n"+numbered(0, 10))
	writeFile(t, path, numbered(20, 23))
	r := startFile(t, path, Start{Resume: pos}, FileOptions{})
	equal(t, r.texts(3, wait), numberedList(20, 23))
	r.none(300 * time.Millisecond)
	if n := r.rec.count("WARN", "lines may have been missed"); n != 1 {
		t.Fatalf("%d warnings", n)
	}
}

func TestResumeTruncatedWhileStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, numbered(0, 10))
	pos := readPos(t, path, 10, 5)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(numbered(30, 32))
	f.Close()
	if inode(t, path) != pos.Inode {
		t.Fatal("inode changed")
	}
	r := startFile(t, path, Start{Resume: pos}, FileOptions{})
	equal(t, r.texts(2, wait), numberedList(30, 32))
	r.none(300 * time.Millisecond)
}

func TestResumeCopytruncateWhileStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, numbered(0, 10))
	pos := readPos(t, path, 10, 5)
	appendTo(t, path, numbered(10, 12))
	logrotateCopytruncate(t, path)
	appendTo(t, path, numbered(12, 30)) // longer than the offset: a rewrite, not just a truncation
	r := startFile(t, path, Start{Resume: pos}, FileOptions{})
	equal(t, r.texts(25, wait), numberedList(5, 30))
	r.none(300 * time.Millisecond)
}

// logrotateCopytruncate does what logrotate's copytruncate does: shift the
// rotated files, copy the log to name.1, truncate the log in place.
func logrotateCopytruncate(t *testing.T, path string) {
	t.Helper()
	shiftRotated(t, path)
	src, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Error(err)
		return
	}
	if err := dst.Close(); err != nil {
		t.Error(err)
		return
	}
	if err := src.Truncate(0); err != nil {
		t.Error(err)
		return
	}
}

// shiftRotated renames name.N to name.N+1, from the highest N down.
func shiftRotated(t *testing.T, path string) {
	t.Helper()
	n := 1
	for {
		if _, err := os.Stat(path + "." + itoa(n)); err != nil {
			break
		}
		n++
	}
	for i := n - 1; i >= 1; i-- {
		if err := os.Rename(path+"."+itoa(i), path+"."+itoa(i+1)); err != nil {
			t.Error(err)
			return
		}
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}
