package source

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const wait = 5 * time.Second

func TestAppendAndRead(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "mail.log")
		writeFile(t, path, "first line\nsecond\r\nthird\n")
		r := startFile(t, path, Start{}, FileOptions{Poll: poll})
		h := fnv.New64a()
		h.Write([]byte("first line"))
		fp := h.Sum64()
		ino := inode(t, path)

		var offs []int64
		var got []string
		for range 3 {
			l := r.next(wait)
			if l.Path != path || l.Pos.Path != path || l.Pos.Inode != ino || l.Pos.Fingerprint != fp || l.Skipped {
				t.Fatalf("line %q: path %q pos %+v skipped %v; want inode %d fingerprint %x", l.Text, l.Path, l.Pos, l.Skipped, ino, fp)
			}
			got = append(got, string(l.Text))
			offs = append(offs, l.Pos.Offset)
		}
		equal(t, got, []string{"first line", "second", "third"})
		if fmt.Sprint(offs) != "[11 19 25]" {
			t.Fatalf("offsets %v, want [11 19 25]", offs)
		}

		appendTo(t, path, "fourth\nfif")
		l := r.next(wait)
		if string(l.Text) != "fourth" || l.Pos.Offset != 32 {
			t.Fatalf("got %q at %d", l.Text, l.Pos.Offset)
		}
		r.none(400 * time.Millisecond) // "fif" waits for its newline
		appendTo(t, path, "th\n")
		if l := r.next(wait); string(l.Text) != "fifth" || l.Pos.Offset != 38 {
			t.Fatalf("got %q at %d", l.Text, l.Pos.Offset)
		}
		st := r.stats(5)
		if !st.Open || st.Lines != 5 || st.Skipped != 0 || st.Pos.Offset != 38 || st.Path != path {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestWaitForMissingFile(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		dir := filepath.Join(t.TempDir(), "log") // the directory is missing too
		path := filepath.Join(dir, "mail.log")
		r := startFile(t, path, Start{Since: time.Now()}, FileOptions{Poll: poll, ParseTime: func([]byte) (time.Time, bool) { return time.Time{}, false }})
		r.none(300 * time.Millisecond)
		if st := r.f.Stats(); st.Open {
			t.Fatalf("stats %+v", st)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, "hello\n")
		// A file that appears later is new: read from its start.
		equal(t, r.texts(1, wait), []string{"hello"})
		appendTo(t, path, "again\n")
		equal(t, r.texts(1, wait), []string{"again"})
		if n := r.rec.count("INFO", "waiting for the log to appear"); n != 1 {
			t.Fatalf("%d waiting messages, want 1", n)
		}
	})
}

// TestFollowLatency measures how soon an appended line is handed out.
func TestLongLineSkippedWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	long := bytes.Repeat([]byte("x"), 1<<20)
	copy(long[70000:], "Nov 28 04:10:00 host sshd[1]: fake line")
	writeFile(t, path, "before\n"+string(long)+"\nafter\n")
	r := startFile(t, path, Start{}, FileOptions{})
	equal(t, r.texts(3, wait), []string{"before", "<skipped>", "after"})
	st := r.stats(3)
	if st.Skipped != 1 || st.Lines != 2 || st.Pos.Offset != int64(7+len(long)+1+6) {
		t.Fatalf("stats %+v", st)
	}
	// And while following: the long line is written in parts.
	appendTo(t, path, string(long[:300000]))
	r.none(300 * time.Millisecond)
	appendTo(t, path, string(long[300000:])+"\nlast\n")
	equal(t, r.texts(2, wait), []string{"<skipped>", "last"})
}

func TestFakeLineInsideLongLine(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		const max = 100
		fake := "Nov 28 04:10:00 host postfix/smtpd[1]: fake: connect from unknown[192.0.2.1]"
		path := filepath.Join(t.TempDir(), "mail.log")
		var b strings.Builder
		var want []string
		for _, pad := range []int{max - len(fake) + 1, max, max + 1, max + 2, max + 3, 2 * (max + 2), 3*(max+2) - 1, 5000} {
			fmt.Fprintf(&b, "%s%s\n", strings.Repeat("A", pad), fake)
			want = append(want, "<skipped>")
			b.WriteString("ok\n")
			want = append(want, "ok")
		}
		exact := strings.Repeat("B", max)
		b.WriteString(exact + "\n" + exact + "\r\n" + exact + "C\n")
		want = append(want, exact, exact, "<skipped>")
		writeFile(t, path, b.String())
		r := startFile(t, path, Start{}, FileOptions{MaxLine: max, Poll: poll})
		got := r.texts(len(want), wait)
		equal(t, got, want)
		r.none(200 * time.Millisecond)
		// The same, written while followed, a piece at a time.
		for _, pad := range []int{max + 2, 2 * (max + 2)} {
			appendTo(t, path, strings.Repeat("A", pad))
			time.Sleep(30 * time.Millisecond)
			appendTo(t, path, fake)
			time.Sleep(30 * time.Millisecond)
			appendTo(t, path, "\nok\n")
			equal(t, r.texts(2, wait), []string{"<skipped>", "ok"})
		}
		if st := r.stats(int64(len(want) + 4)); st.Skipped != 11 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestBinaryLinesPassThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	var all []byte
	for i := range 256 {
		if i != '\n' {
			all = append(all, byte(i))
		}
	}
	lines := [][]byte{
		all,
		{0xff, 0xfe, 0xfd},
		{0x80, 'a', 0xc3},
		[]byte("caf\xc3\xa9 \xed\xa0\x80"),
		{0},
		{},
	}
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	writeFile(t, path, string(b))
	r := startFile(t, path, Start{}, FileOptions{})
	for i, want := range lines {
		l := r.next(wait)
		if !bytes.Equal(l.Text, want) {
			t.Fatalf("line %d: got %q, want %q", i, l.Text, want)
		}
	}
}

func TestTruncateToZero(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "mail.log")
		writeFile(t, path, numbered(0, 5))
		r := startFile(t, path, Start{}, FileOptions{Poll: poll})
		equal(t, r.texts(5, wait), numberedList(0, 5))
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		// At once more than there was before: the reader must not go on at
		// its old offset in the new content.
		appendTo(t, path, "new "+numbered(100, 110))
		want := append([]string{"new line 100"}, numberedList(101, 110)...)
		equal(t, r.texts(len(want), wait), want)
		r.none(300 * time.Millisecond)
		// Truncated with nothing written after.
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		appendTo(t, path, "x\n")
		equal(t, r.texts(1, wait), []string{"x"})
		r.none(200 * time.Millisecond)
	})
}

func TestDeleteAndRecreate(t *testing.T) {
	both(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "mail.log")
		writeFile(t, path, numbered(0, 5))
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		r := startFile(t, path, Start{}, FileOptions{Poll: poll, RotateWait: 300 * time.Millisecond})
		equal(t, r.texts(5, wait), numberedList(0, 5))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		// The writer has not reopened yet: these go to the deleted file.
		fmt.Fprint(w, numbered(5, 8))
		writeFile(t, path, numbered(8, 10))
		fmt.Fprint(w, numbered(10, 12)) // still the old file
		want := append(numberedList(5, 8), numberedList(10, 12)...)
		want = append(want, numberedList(8, 10)...)
		equal(t, r.texts(len(want), wait), want)
		r.none(300 * time.Millisecond)
		// Deleted with nobody writing, then recreated much later.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		if st := r.f.Stats(); st.Open {
			t.Errorf("still open after the deleted file was left: %+v", st)
		}
		writeFile(t, path, "back\n")
		equal(t, r.texts(1, wait), []string{"back"})
	})
}

func TestRunStopsAndLeaksNothing(t *testing.T) {
	run := func(poll bool) {
		dir := t.TempDir()
		path := filepath.Join(dir, "mail.log")
		writeFile(t, path, numbered(0, 3))
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan []Line) // nobody reads after the first lines: Run must still stop
		f := NewFile(path, Start{}, nil, FileOptions{Poll: poll, RotateWait: 100 * time.Millisecond})
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx, out) }()
		n := len(<-out)
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, numbered(3, 6))
		for n < 5 {
			n += len(<-out)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(wait):
			t.Fatal("Run did not return")
		}
		// A source that waits for a missing file stops too.
		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			done <- NewFile(filepath.Join(dir, "missing"), Start{}, nil, FileOptions{Poll: poll}).Run(ctx, out)
		}()
		time.Sleep(150 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// nxadm/tail's shared inotify tracker and fsnotify's reader start once
	// per process and stay: start them before counting.
	run(false)
	time.Sleep(400 * time.Millisecond)
	before := runtime.NumGoroutine()
	run(false)
	run(true)
	// nxadm/tail's polling goroutine ends at its next poll (250 ms).
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf)
	}
}

func TestFingerprint(t *testing.T) {
	h := func(s string) uint64 {
		f := fnv.New64a()
		f.Write([]byte(s))
		return f.Sum64()
	}
	long := strings.Repeat("y", 3000)
	for _, c := range []struct {
		content string
		want    uint64
	}{
		{"", 0},
		{"partial", 0},
		{"abc\nrest\n", h("abc")},
		{"\n", h("")},
		{long, h(long[:fpLen])},
		{long + "\n", h(long[:fpLen])},
	} {
		got, _, err := fingerprint(strings.NewReader(c.content), make([]byte, fpLen))
		if err != nil || got != c.want {
			t.Errorf("fingerprint(%.20q) = %x, %v; want %x", c.content, got, err, c.want)
		}
	}
}

// TestTwoSourcesOneFile: two Files on one log in one process. nxadm/tail's
// inotify tracker cannot watch one inode under two names, so the second one
// polls; both must see every line.
func TestTwoSourcesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, numbered(0, 3))
	a := startFile(t, path, Start{}, FileOptions{RotateWait: 200 * time.Millisecond})
	b := startFile(t, path, Start{}, FileOptions{RotateWait: 200 * time.Millisecond})
	equal(t, a.texts(3, wait), numberedList(0, 3))
	equal(t, b.texts(3, wait), numberedList(0, 3))
	appendTo(t, path, numbered(3, 5))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path+".1", numbered(5, 6))
	writeFile(t, path, numbered(6, 8))
	equal(t, a.texts(5, wait), numberedList(3, 8))
	equal(t, b.texts(5, wait), numberedList(3, 8))
}

// A File run again after Run returned resumes after the last line it
// handed out: the daemon restarts a failed source this way.
func TestRunAgainResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, numbered(1, 4))
	r := startFile(t, path, Start{}, FileOptions{})
	equal(t, r.texts(3, 5*time.Second), numberedList(1, 4))
	r.stop()
	appendTo(t, path, numbered(4, 7))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.f.Run(ctx, r.lines) }()
	equal(t, r.texts(3, 5*time.Second), numberedList(4, 7))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAligned checks that the quiet probe's instants are the same from
// wherever it is started: from any instant, the wait ends on a whole
// multiple of the period, at least half a period and less than one and a
// half away.
func TestAligned(t *testing.T) {
	base := time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		now   time.Time
		every time.Duration
		want  time.Duration
	}{
		{"on a multiple", base, time.Second, time.Second},
		{"just after one", base.Add(time.Nanosecond), time.Second, time.Second - time.Nanosecond},
		{"before the middle", base.Add(400 * time.Millisecond), time.Second, 600 * time.Millisecond},
		{"at the middle", base.Add(500 * time.Millisecond), time.Second, 500 * time.Millisecond},
		{"after the middle: the multiple after next", base.Add(700 * time.Millisecond), time.Second, 1300 * time.Millisecond},
		{"just before one", base.Add(time.Second - time.Nanosecond), time.Second, time.Second + time.Nanosecond},
		{"two seconds", base.Add(3 * time.Second), 2 * time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := aligned(tt.now, tt.every); got != tt.want {
				t.Errorf("aligned(+%v, %v) = %v, want %v", tt.now.Sub(base), tt.every, got, tt.want)
			}
		})
	}
	// Two logs checked at different phases wake at the same instant.
	a := base.Add(130 * time.Millisecond)
	b := base.Add(410 * time.Millisecond)
	if ea, eb := a.Add(aligned(a, time.Second)), b.Add(aligned(b, time.Second)); !ea.Equal(eb) {
		t.Errorf("checks at +130ms and +410ms wake at %v and %v", ea.Sub(base), eb.Sub(base))
	}
}
