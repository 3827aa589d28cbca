package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/firewall/logonly"
)

// hangingBackend is the log firewall whose Add blocks, once armed, until
// released: a netlink call that never returns.
type hangingBackend struct {
	*logonly.Backend
	armed   atomic.Bool
	hung    chan struct{} // closed when an Add blocks
	release chan struct{}
	once    sync.Once
}

func (b *hangingBackend) Add(ctx context.Context, entries []firewall.Entry) error {
	if b.armed.Load() {
		b.once.Do(func() { close(b.hung) })
		<-b.release
	}
	return b.Backend.Add(ctx, entries)
}

// The watchdog's keep-alives come while the pipeline works, stop while the
// committer hangs in the firewall, and come again when it returns.
func TestWatchdogStopsWhileThePipelineHangs(t *testing.T) {
	e := newEnv(t)
	fw := &hangingBackend{Backend: logonly.New(slog.New(slog.DiscardHandler)), hung: make(chan struct{}), release: make(chan struct{})}
	var alive atomic.Int64
	defer e.startWith(Options{Backend: fw, Alive: func() { alive.Add(1) }, AliveEvery: 20 * time.Millisecond})()
	released := false
	defer func() { // runs before the stop above: the committer may wait in Add
		if !released {
			close(fw.release)
		}
	}()
	waitAlive := func(what string) {
		t.Helper()
		n := alive.Load()
		deadline := time.Now().Add(5 * time.Second)
		for alive.Load() < n+3 {
			if time.Now().After(deadline) {
				t.Fatalf("%d keep-alives in 5 s %s", alive.Load()-n, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAlive("while the daemon works")

	fw.armed.Store(true)
	e.appendLines(failures("203.0.113.7", 5)...)
	select {
	case <-fw.hung:
	case <-time.After(5 * time.Second):
		t.Fatalf("the ban did not reach the firewall\n%s", e.logBuf)
	}
	time.Sleep(60 * time.Millisecond) // a probe sent before the hang may still be answered
	n := alive.Load()
	time.Sleep(300 * time.Millisecond) // 15 intervals
	if got := alive.Load() - n; got != 0 {
		t.Errorf("%d keep-alives while the committer hung in the firewall", got)
	}
	if !strings.Contains(e.logBuf.String(), "no watchdog keep-alive") {
		t.Errorf("the missed keep-alives are not logged:\n%s", e.logBuf)
	}

	close(fw.release)
	released = true
	waitAlive("after the firewall returned")
}
