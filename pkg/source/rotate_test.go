package source

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Load: a writer appends numbered lines in batches (one write each), about
// 25k-45k lines/s, and the log is rotated several times meanwhile.
const (
	loadLines = 60000
	loadBatch = 50
)

func loadLine(n int) string {
	return fmt.Sprintf("Nov 28 04:10:00 host postfix/smtpd[%d]: line %08d\n", n%100000, n)
}

func lineNumber(t *testing.T, text []byte) int {
	i := bytes.LastIndex(text, []byte("line "))
	n, err := strconv.Atoi(string(text[i+5:]))
	if i < 0 || err != nil {
		t.Fatalf("bad line %q", text)
	}
	return n
}

func writeBatch(t *testing.T, f *os.File, n *int) {
	var b strings.Builder
	for range loadBatch {
		b.WriteString(loadLine(*n))
		*n++
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Error(err)
	}
}

// collector receives line numbers in the background. After pauseAt lines it
// stops reading for pause: a daemon that stalls while the log is rotated.
type collector struct {
	mu   sync.Mutex
	got  []int
	bad  string
	stop chan struct{}
	done chan struct{}
}

func collect(t *testing.T, r *running, pauseAt int, pause time.Duration) *collector {
	c := &collector{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case ls := <-r.lines:
				c.mu.Lock()
				before := len(c.got)
				for _, l := range ls {
					if l.Skipped {
						c.bad = fmt.Sprintf("skipped line at %+v", l.Pos)
					} else {
						c.got = append(c.got, lineNumber(t, l.Text))
					}
				}
				n := len(c.got)
				c.mu.Unlock()
				if before < pauseAt && n >= pauseAt {
					time.Sleep(pause)
				}
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

// wait returns the numbers received once there are at least want and none
// came for a moment, or at the deadline.
func (c *collector) wait(t *testing.T, want int, deadline time.Time) []int {
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		c.mu.Lock()
		n := len(c.got)
		c.mu.Unlock()
		if n != last {
			last, since = n, time.Now()
		} else if n >= want && time.Since(since) > 500*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(c.stop)
	<-c.done
	if c.bad != "" {
		t.Fatal(c.bad)
	}
	return c.got
}

// TestRenameRotationUnderLoad rotates the log as logrotate does by default
// (rename, create, and the writer reopens a little later) while lines are
// written as fast as a busy mail server's, and checks that every line comes
// exactly once, in order.
func TestRenameRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	both(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "mail.log")
		writeFile(t, path, "")
		r := startFile(t, path, Start{}, FileOptions{Poll: poll, RotateWait: 300 * time.Millisecond})
		const every = 8000
		c := collect(t, r, 20000, 1500*time.Millisecond)
		done := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			n := 0
			for n < loadLines {
				writeBatch(t, f, &n)
				if n%every == 0 && n < loadLines {
					// logrotate: shift, rename, create; the daemon reopens
					// on its signal a little later.
					shiftRotated(t, path)
					if err := os.Rename(path, path+".1"); err != nil {
						t.Error(err)
					}
					c, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
					if err != nil {
						t.Error(err)
						return
					}
					c.Close()
					for range 10 {
						writeBatch(t, f, &n)
						time.Sleep(time.Millisecond)
					}
					f.Close()
					if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
						t.Error(err)
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
			f.Close()
			done <- time.Since(t0)
		}()
		took := <-done
		got := c.wait(t, loadLines, time.Now().Add(30*time.Second))
		t.Logf("wrote %d lines in %v (%.0f lines/s), %d rotations", loadLines, took, loadLines/took.Seconds(), loadLines/every)
		for i, n := range got {
			if n != i {
				t.Fatalf("line %d is number %d (%d lines received, want %d)", i, n, len(got), loadLines)
			}
		}
		if len(got) != loadLines {
			t.Fatalf("%d lines received, want %d", len(got), loadLines)
		}
		if n := r.rec.count("WARN"); n != 0 {
			t.Errorf("%d warnings", n)
		}
	})
}

// TestCopytruncateUnderLoad rotates the log as logrotate's copytruncate does
// (copy to name.1, truncate in place; the writer never reopens) under load.
// Lines written between the end of the copy and the truncation are in
// neither file: logrotate loses them. Every other line must come exactly
// once, in order.
func TestCopytruncateUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	both(t, func(t *testing.T, poll bool) {
		path := filepath.Join(t.TempDir(), "mail.log")
		writeFile(t, path, "")
		r := startFile(t, path, Start{}, FileOptions{Poll: poll})
		c := collect(t, r, 20000, 1500*time.Millisecond)
		done := make(chan struct{})
		rotations := make(chan int, 1)
		go func() {
			defer close(done)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			n := 0
			for n < loadLines {
				writeBatch(t, f, &n)
				time.Sleep(time.Millisecond)
			}
		}()
		go func() {
			k := 0
			defer func() { rotations <- k }()
			for {
				select {
				case <-done:
					return
				case <-time.After(250 * time.Millisecond):
				}
				logrotateCopytruncate(t, path)
				k++
			}
		}()
		<-done
		k := <-rotations

		// What survived rotation: the complete lines of the copies and of
		// the log.
		survived := map[int]bool{}
		names, _ := filepath.Glob(path + "*")
		for _, name := range names {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
				data = data[:i+1]
			} else {
				data = nil
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				survived[lineNumber(t, sc.Bytes())] = true
			}
		}
		got := c.wait(t, len(survived), time.Now().Add(30*time.Second))
		seen := map[int]bool{}
		for i, n := range got {
			if i > 0 && n <= got[i-1] {
				t.Fatalf("line %d is number %d after %d", i, n, got[i-1])
			}
			seen[n] = true
		}
		var missing []int
		for n := range survived {
			if !seen[n] {
				missing = append(missing, n)
			}
		}
		sort.Ints(missing)
		if len(missing) > 0 {
			t.Fatalf("%d lines that survived rotation were not received: %v", len(missing), missing[:min(20, len(missing))])
		}
		t.Logf("%d rotations; %d lines written, %d survived logrotate, %d received (%d of those logrotate lost)",
			k, loadLines, len(survived), len(got), len(got)-len(survived))
		if n := r.rec.count("WARN"); n != 0 {
			t.Errorf("%d warnings", n)
		}
	})
}

// TestCopytruncateRefilledPastOffset: the receiver is blocked (so nxadm/tail
// has read ahead and waits) while the log is copied, truncated and written
// again past the old offset. The reader must not go on at its old offset in
// the new content: it reads the rest of the old content from the copy, then
// the new content from its start, every line once.
func TestCopytruncateRefilledPastOffset(t *testing.T) {
	for _, delay := range []time.Duration{0, 30 * time.Millisecond, 150 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			writeFile(t, path, numbered(0, 3000))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan []Line) // unbuffered: Run blocks once it holds as many lines as it takes
			f := NewFile(path, Start{}, nil, FileOptions{})
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx, out) }()
			var got []string
			add := func(ls []Line) {
				for _, l := range ls {
					got = append(got, string(l.Text))
				}
			}
			for len(got) < 10 {
				add(<-out)
			}
			time.Sleep(50 * time.Millisecond)
			logrotateCopytruncate(t, path)
			time.Sleep(delay)
			appendTo(t, path, numbered(10000, 14000)) // longer than the old content
			time.Sleep(delay)
			want := append(numberedList(0, 3000), numberedList(10000, 14000)...)
			for len(got) < len(want) {
				select {
				case ls := <-out:
					add(ls)
				case <-time.After(wait):
					t.Fatalf("%d lines, want %d; last %q", len(got), len(want), got[len(got)-1])
				}
			}
			equal(t, got, want)
			select {
			case ls := <-out:
				t.Fatalf("extra line %q", ls[0].Text)
			case <-time.After(300 * time.Millisecond):
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
