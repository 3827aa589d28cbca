package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal 100 columns wide: the master side, where
// the test reads what was drawn, and the terminal, which banctl gets as its
// standard error.
func openPTY(t *testing.T) (master, term *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	// grantpt is nothing to do with devpts; unlockpt, then ptsname.
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("pseudo-terminal %d: %v", n, err)
	}
	t.Cleanup(func() { term.Close() })
	if err := unix.IoctlSetWinsize(int(term.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 100}); err != nil {
		t.Fatal(err)
	}
	return master, term
}

// syncBuffer collects what a goroutine reads, for the test to look at.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	done chan struct{}
}

// collect reads r to its end (or error) in a goroutine.
func collect(r io.Reader) *syncBuffer {
	sb := &syncBuffer{done: make(chan struct{})}
	go func() {
		defer close(sb.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			sb.mu.Lock()
			sb.b.Write(buf[:n])
			sb.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return sb
}

func (sb *syncBuffer) String() string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.b.String()
}

// waitFor waits until the collected text contains s.
func (sb *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(sb.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", s, sb.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// wait waits for the reading goroutine to end.
func (sb *syncBuffer) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-sb.done:
	case <-time.After(10 * time.Second):
		t.Fatal("reader still reading")
	}
	return sb.String()
}

// frame matches one drawing of the progress bar without a known size:
// carriage return, the line, clear to its end.
var frame = regexp.MustCompile(`^\r[0-9]+(\.[0-9]+[kM])? lines  [0-9.]+[kM]? lines/s  [0-9.]+[kM]? matched\x1b\[K$`)

// banctl test draws its progress bar on standard error when that is a
// terminal, and erases it before printing results; not with --json or
// --no-progress, not on a pipe. Standard input is a pipe that the test
// writes, so the bar is seen while banctl waits for more.
func TestTestProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	data, err := os.ReadFile(filepath.Join("testdata", "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	const copies = 200 // 1000 lines, 600 of them matched
	input := bytes.Repeat(data, copies)
	tests := []struct {
		name    string
		args    []string
		pipe    bool // standard error is a pipe, not a terminal
		wantBar bool
	}{
		{"terminal", nil, false, true},
		{"terminal, --json", []string{"--json"}, false, false},
		{"terminal, --no-progress", []string{"--no-progress"}, false, false},
		{"pipe", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errW *os.File
			var errR io.ReadCloser
			if tt.pipe {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				errR, errW = r, w
			} else {
				errR, errW = openPTY(t)
			}
			drawn := collect(errR)
			inR, inW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer inR.Close()
			var out bytes.Buffer
			code := make(chan int, 1)
			go func() {
				args := append([]string{"test", "--config", t.TempDir()}, tt.args...)
				code <- run(context.Background(), append(args, "-"), inR, &out, errW)
			}()
			written := make(chan error, 1)
			go func() {
				_, err := inW.Write(input)
				written <- err
			}()
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			if tt.wantBar {
				drawn.waitFor(t, "\r1000 lines  ")
				drawn.waitFor(t, "  600 matched\x1b[K")
			} else {
				time.Sleep(50 * time.Millisecond) // 50 chances to draw
			}
			inW.Close()
			if c := <-code; c != 0 {
				t.Fatalf("exit %d", c)
			}
			errW.Close() // the reader sees the end
			got := drawn.wait(t)
			if !strings.Contains(out.String(), "read:      1000 lines in 1 file(s)") && !strings.Contains(out.String(), `"lines":1000,`) {
				t.Errorf("stdout:\n%s", out.String())
			}
			if !tt.wantBar {
				if got != "" {
					t.Errorf("standard error %q, want nothing", got)
				}
				return
			}
			// Frames, then the erasure, and nothing else.
			if !strings.HasSuffix(got, "\r\x1b[K") {
				t.Fatalf("the bar is not erased at the end: %q", got)
			}
			frames := splitFrames(got)
			if len(frames) == 0 {
				t.Fatal("no frame drawn")
			}
			for _, f := range frames {
				if !frame.MatchString(f) {
					t.Errorf("frame %q", f)
				}
			}
		})
	}
}

// With files, whose size is known, the bar has the percent read and an ETA.
func TestTestProgressFile(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	data, err := os.ReadFile(filepath.Join("testdata", "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(path, bytes.Repeat(data, 20000), 0o644); err != nil { // 100,000 lines: every filter on them takes far longer than 1ms
		t.Fatal(err)
	}
	master, term := openPTY(t)
	drawn := collect(master)
	var out bytes.Buffer
	if code := run(context.Background(), []string{"test", "--config", t.TempDir(), path}, nil, &out, term); code != 0 {
		t.Fatalf("exit %d", code)
	}
	term.Close()
	got := drawn.wait(t)
	if !strings.Contains(out.String(), "read:      100000 lines in 1 file(s)") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Fatalf("the bar is not erased at the end: %q", got)
	}
	withSize := regexp.MustCompile(`^\r[ 0-9]{3}\.[0-9]% \[=*>? *\] .* lines  .* lines/s  .* matched  ETA [-0-9:]+\x1b\[K$`)
	frames := splitFrames(got)
	if len(frames) == 0 {
		t.Fatal("no frame drawn")
	}
	for _, f := range frames {
		if !withSize.MatchString(f) {
			t.Errorf("frame %q", f)
		}
		if n := len(strings.TrimSuffix(strings.TrimPrefix(f, "\r"), "\x1b[K")); n != 99 {
			t.Errorf("frame of %d columns on a terminal of 100", n)
		}
	}
}

// splitFrames returns the frames drawn before the final erasure, each
// ending in clear to end of line.
func splitFrames(s string) []string {
	frames := strings.SplitAfter(strings.TrimSuffix(s, "\r\x1b[K"), "\x1b[K")
	return frames[:len(frames)-1] // what follows the last
}
