package main

import (
	"io"
	"sync"
)

// logWriter is where the daemon's log lines go. Between hold and the
// function hold returns it gathers them and writes them in one call: a
// flood of bans is logged a batch to a write, not a line to a write (a
// write(2) costs about as much as formatting the line). Errors are those
// of the underlying writer; a gathered batch that fails to write is lost,
// as a single line would be.
type logWriter struct {
	mu   sync.Mutex
	w    io.Writer
	held int
	buf  []byte
}

// logFlushAt is how much a held batch gathers before it is written anyway.
const logFlushAt = 64 << 10

// Write writes p, or gathers it while held.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == 0 {
		return l.w.Write(p)
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) >= logFlushAt {
		l.flush()
	}
	return len(p), nil
}

// hold makes writes gather until the returned function is called (holds
// nest; the outermost release writes).
func (l *logWriter) hold() (release func()) {
	l.mu.Lock()
	l.held++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.held--
			if l.held == 0 {
				l.flush()
			}
		})
	}
}

// flush writes what is gathered; l.mu is held.
func (l *logWriter) flush() {
	if len(l.buf) == 0 {
		return
	}
	l.w.Write(l.buf) //nolint:errcheck // nowhere to report a failing log
	if cap(l.buf) > 4*logFlushAt {
		l.buf = nil // a rare huge line is not kept
	} else {
		l.buf = l.buf[:0]
	}
}
