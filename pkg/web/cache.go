package web

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// refreshTimeout bounds one computation of a cached value.
const refreshTimeout = 5 * time.Minute

// refresher keeps a value that costs too much to compute at every
// request: the top lists (seconds over a million bans), the active bans'
// counts (as many index entries as active bans). One goroutine (run)
// computes it when run starts and again when a request finds it older
// than every; requests never wait for it, but get the last value with its
// time.
type refresher[T any] struct {
	what    string // for the log: "top lists"
	compute func(ctx context.Context, now time.Time) (T, error)
	now     func() time.Time
	every   time.Duration
	log     *slog.Logger
	kick    chan struct{} // a request asks for a new value (buffer 1)

	mu      sync.Mutex
	cur     *cached[T]    // nil until the first is computed
	err     error         // the last computation's error; nil once one succeeded after it
	running bool          // a computation is on (or asked for)
	started time.Time     // when the last computation started
	done    chan struct{} // closed when the running computation ends
}

// cached is a value and when it was computed.
type cached[T any] struct {
	v    T
	asOf time.Time
}

func newRefresher[T any](what string, compute func(context.Context, time.Time) (T, error), now func() time.Time, every time.Duration, log *slog.Logger) *refresher[T] {
	// The first computation is due as soon as run starts.
	return &refresher[T]{what: what, compute: compute, now: now, every: every, log: log, kick: make(chan struct{}, 1),
		running: true, started: now(), done: make(chan struct{})}
}

// run computes the value at once and then whenever a request asks, until
// ctx is done.
func (r *refresher[T]) run(ctx context.Context) {
	for {
		r.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
	}
}

// refresh computes the value and keeps it, or keeps the error with the
// last good value.
func (r *refresher[T]) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	t := r.now()
	r.mu.Lock()
	r.started = t
	r.mu.Unlock()
	v, err := r.compute(ctx, t)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("web: the "+r.what+" cannot be computed; the last ones stay", "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.cur = &cached[T]{v: v, asOf: t}
	}
	r.err = err
	r.running = false
	close(r.done)
	r.done = make(chan struct{})
}

// snapshot is what a request knows of a value.
type snapshot[T any] struct {
	cur     *cached[T] // nil until the first is computed
	err     error      // the last computation failed
	running bool       // a computation is on
	started time.Time  // when the last one started
}

// get returns the value as it is and, when it is older than every (or the
// last try failed that long ago) and none is being computed, asks for a
// new one.
func (r *refresher[T]) get() snapshot[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running && r.now().Sub(r.started) >= r.every {
		select {
		case r.kick <- struct{}{}:
			r.running = true
		default:
		}
	}
	return snapshot[T]{cur: r.cur, err: r.err, running: r.running, started: r.started}
}

// first returns the value, waiting for the first computation (or ctx)
// when there is none yet: for a value that is quick to compute.
func (r *refresher[T]) first(ctx context.Context) snapshot[T] {
	for {
		s := r.get()
		if s.cur != nil || !s.running {
			return s
		}
		select {
		case <-r.idle():
		case <-ctx.Done():
			return s
		}
	}
}

// idle returns a channel closed once no computation runs: at once when
// none does, else when the running (or asked for) one ends.
func (r *refresher[T]) idle() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return r.done
}
