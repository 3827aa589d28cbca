package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// writes records each call to Write.
type writes struct{ calls []string }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

func TestLogWriter(t *testing.T) {
	w := &writes{}
	l := &logWriter{w: w}
	log := slog.New(slog.NewTextHandler(l, nil))

	log.Info("one")
	if len(w.calls) != 1 || !strings.Contains(w.calls[0], "msg=one") {
		t.Fatalf("not held: want one write per line, got %q", w.calls)
	}

	release := l.hold()
	inner := l.hold()
	log.Info("two")
	log.Info("three")
	inner()
	if len(w.calls) != 1 {
		t.Fatalf("held: lines written before the outer release: %q", w.calls)
	}
	release()
	release() // a second call does nothing
	if len(w.calls) != 2 || strings.Count(w.calls[1], "\n") != 2 || !strings.Contains(w.calls[1], "msg=two") || !strings.Contains(w.calls[1], "msg=three") {
		t.Fatalf("released: want both lines in one write, got %q", w.calls)
	}

	log.Info("four")
	if len(w.calls) != 3 {
		t.Fatalf("after release: want a write per line again, got %d writes", len(w.calls))
	}

	// A held batch larger than logFlushAt is written as it grows, whole
	// lines at a time.
	w.calls = nil
	release = l.hold()
	long := strings.Repeat("x", 1000)
	n := 2 * logFlushAt / 1000
	for range n {
		log.Info(long)
	}
	if len(w.calls) == 0 {
		t.Fatal("a held batch over logFlushAt was not written before the release")
	}
	release()
	var all bytes.Buffer
	for _, c := range w.calls {
		if !strings.HasSuffix(c, "\n") {
			t.Fatalf("a write ends inside a line: %q", c[len(c)-20:])
		}
		all.WriteString(c)
	}
	if got := strings.Count(all.String(), "\n"); got != n {
		t.Fatalf("%d lines written, want %d", got, n)
	}
}
