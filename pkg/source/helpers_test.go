package source

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a slog handler that keeps records, printed if the test fails.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]string
	attrs []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), recs: new([]string)} }

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, b.String())
	h.mu.Unlock()
	return nil
}

func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{mu: h.mu, recs: h.recs, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *recorder) WithGroup(string) slog.Handler { return h }

// count returns how many records hold all of the words.
func (h *recorder) count(words ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.recs {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(r, w)
		}
		if ok {
			n++
		}
	}
	return n
}

func (h *recorder) dump(t testing.TB) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if !strings.Contains(r, "nxadm/tail") {
			t.Log(r)
		}
	}
}

// running is a File being run by a test.
type running struct {
	t      testing.TB
	f      *File
	rec    *recorder
	lines  chan []Line
	rest   []Line // lines of the last batch received not taken yet
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startFile(t testing.TB, path string, st Start, opts FileOptions) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, rec: newRecorder(), lines: make(chan []Line, 64), cancel: cancel, done: make(chan error, 1)}
	r.f = NewFile(path, st, slog.New(r.rec), opts)
	go func() { r.done <- r.f.Run(ctx, r.lines) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			r.rec.dump(t)
		}
	})
	return r
}

// stop cancels Run and checks that it returns nil promptly.
func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			r.t.Errorf("Run did not return after cancel")
		}
	})
}

// next returns the next line, failing the test after d.
func (r *running) next(d time.Duration) Line {
	r.t.Helper()
	for len(r.rest) == 0 {
		select {
		case ls := <-r.lines:
			if len(ls) == 0 {
				r.t.Fatalf("an empty batch")
			}
			r.rest = ls
		case err := <-r.done:
			r.t.Fatalf("Run returned early: %v", err)
		case <-time.After(d):
			r.t.Fatalf("no line within %v", d)
		}
	}
	l := r.rest[0]
	r.rest = r.rest[1:]
	return l
}

// receive returns the next batch, or nil after d.
func (r *running) receive(d time.Duration) []Line {
	if len(r.rest) > 0 {
		ls := r.rest
		r.rest = nil
		return ls
	}
	select {
	case ls := <-r.lines:
		return ls
	case <-time.After(d):
		return nil
	}
}

// stats returns the File's stats once they count n lines (handed out or
// skipped), or after a few seconds: a batch is counted just after it was
// sent, so a line may be received a moment before it is counted.
func (r *running) stats(n int64) FileStats {
	deadline := time.Now().Add(wait)
	for {
		st := r.f.Stats()
		if st.Lines+st.Skipped >= n || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

// texts returns the texts of the next n lines (skipped ones as "<skipped>").
func (r *running) texts(n int, d time.Duration) []string {
	r.t.Helper()
	var out []string
	deadline := time.Now().Add(d)
	for len(out) < n {
		l := r.next(time.Until(deadline))
		if l.Skipped {
			out = append(out, "<skipped>")
		} else {
			out = append(out, string(l.Text))
		}
	}
	return out
}

// none checks that no line comes within d.
func (r *running) none(d time.Duration) {
	r.t.Helper()
	if ls := r.receive(d); len(ls) > 0 {
		l := ls[0]
		r.t.Fatalf("unexpected line %q (skipped %v) at %+v", l.Text, l.Skipped, l.Pos)
	}
}

func appendTo(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// numbered returns lines "line <i>" for i in [from, to).
func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func numberedList(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ino := devIno(st)
	return ino
}

// both runs f as a subtest with inotify and with polling.
func both(t *testing.T, f func(t *testing.T, poll bool)) {
	for _, poll := range []bool{false, true} {
		name := "inotify"
		if poll {
			name = "poll"
		}
		t.Run(name, func(t *testing.T) { f(t, poll) })
	}
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q, want %q\ngot  %q\nwant %q", i, got[i], want[i], got, want)
		}
	}
}
