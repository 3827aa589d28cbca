//go:build linux

package nft

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// watcher runs Watch in the background and collects its calls.
type watcher struct {
	calls chan struct{}
	done  chan error
	stop  context.CancelFunc
}

// startWatch starts Watch and waits until it is subscribed.
func startWatch(t *testing.T, b *Backend) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{calls: make(chan struct{}, 100), done: make(chan error, 1), stop: cancel}
	go func() { w.done <- b.Watch(ctx, func() { w.calls <- struct{}{} }) }()
	t.Cleanup(cancel)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.monitors)
		b.mu.Unlock()
		if n > 0 {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectNone checks changed is not called within quiet.
func (w *watcher) expectNone(t *testing.T, after string, quiet time.Duration) {
	t.Helper()
	select {
	case <-w.calls:
		t.Errorf("changed() called after %s", after)
	case <-time.After(quiet):
	}
}

// expectCall checks changed is called within a second, then drains.
func (w *watcher) expectCall(t *testing.T, after string) {
	t.Helper()
	select {
	case <-w.calls:
	case <-time.After(time.Second):
		t.Errorf("changed() not called within 1s after %s", after)
	}
	for {
		select {
		case <-w.calls:
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}

func TestWatch(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	w := startWatch(t, b)
	const quiet = 500 * time.Millisecond

	if err := b.Add(ctx, entries("sshd", week, "192.0.2.1", "2001:db8::1", "198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Add", quiet)
	if err := b.Remove(ctx, entries("sshd", 0, "192.0.2.1", "192.0.2.99", "198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Remove", quiet)
	if err := b.Reconcile(ctx, entries("sshd", week, "192.0.2.2", "10.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Reconcile", quiet)
	if err := b.Setup(ctx, twoJails[:1]); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Setup dropping a jail", quiet)
	if err := b.Add(ctx, v4Entries("sshd", 0, 50000, week)); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Add of 50,000 entries", quiet)

	// Kernel expiry is silent.
	if err := b.Add(ctx, entries("sshd", time.Second, "192.0.2.50", "2001:db8::50", "203.0.113.0/24")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "elements expired by timeout", 3500*time.Millisecond)
	if got := ns.listSet(t, "banwatch", setOf(t, b, "sshd", kindNet4)); len(got) != 1 {
		t.Errorf("after expiry the prefix set holds %v, want only 10.0.0.0/8", got)
	}

	// Others' changes to other tables are ignored, additions to ours too.
	ns.nft(t, "add", "table", "inet", "other")
	ns.nft(t, "add", "set", "inet", "other", "s", "{ type ipv4_addr; }")
	ns.nft(t, "add", "element", "inet", "other", "s", "{ 192.0.2.1 }")
	ns.nft(t, "delete", "element", "inet", "other", "s", "{ 192.0.2.1 }")
	ns.nft(t, "delete", "table", "inet", "other")
	ns.nft(t, "add", "element", "inet", "banwatch", setOf(t, b, "sshd", kindV4), "{ 192.0.2.77 }")
	w.expectNone(t, "changes to another table and an added element", quiet)

	// Deletions in our table are reported.
	ns.nft(t, "delete", "element", "inet", "banwatch", setOf(t, b, "sshd", kindV4), "{ 192.0.2.2 }")
	w.expectCall(t, "nft delete element")
	if err := b.Add(ctx, entries("sshd", week, "2001:db8::9")); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "flush", "set", "inet", "banwatch", setOf(t, b, "sshd", kindV6))
	w.expectCall(t, "nft flush set")
	ns.nft(t, "flush", "set", "inet", "banwatch", setOf(t, b, "sshd", kindV4))
	w.expectCall(t, "nft flush set of 50,000 elements")
	ns.nft(t, "insert", "rule", "inet", "banwatch", "input", "accept")
	w.expectCall(t, "nft insert rule")
	ns.nft(t, "flush", "ruleset")
	w.expectCall(t, "nft flush ruleset")

	// A Reconcile after the flush is quiet again.
	if err := b.Reconcile(ctx, entries("sshd", week, "192.0.2.2")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Reconcile after flush", quiet)
	ns.nft(t, "delete", "table", "inet", "banwatch")
	w.expectCall(t, "nft delete table")

	w.stop()
	select {
	case err := <-w.done:
		if err != nil {
			t.Errorf("Watch returned %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("Watch did not return after ctx was cancelled")
	}
}

func TestWatchAfterReconnect(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	w := startWatch(t, b)
	// A failed batch replaces the backend's socket; the new socket's
	// changes must still be recognised as our own.
	ns.nft(t, "delete", "table", "inet", "banwatch")
	w.expectCall(t, "nft delete table")
	if err := b.Add(ctx, entries("sshd", week, "192.0.2.1")); err == nil {
		t.Fatal("Add into a deleted table succeeded")
	}
	if err := b.Reconcile(ctx, entries("sshd", week, "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	w.expectNone(t, "own Reconcile on a new socket", 500*time.Millisecond)
	expectCheck(t, b, true, "after Reconcile")
}

func TestOwnNotificationsFilteredInKernel(t *testing.T) {
	_, b := setup(t, twoJails)
	ctx := testCtx(t)
	m, err := b.openMonitor()
	if err != nil {
		t.Fatal(err)
	}
	defer b.closeMonitor(m)
	if err := b.Add(ctx, v4Entries("sshd", 0, 10000, week)); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconcile(ctx, v4Entries("sshd", 0, 100, week)); err != nil {
		t.Fatal(err)
	}
	if err := m.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	msgs, err := m.conn.Receive()
	if err == nil {
		t.Errorf("monitor received %d messages caused by the backend itself", len(msgs))
	}
}

func TestWatchOverflow(t *testing.T) {
	ns, b := setup(t, twoJails)
	old := monitorBuffer
	monitorBuffer = 1 // the kernel's minimum, a few KiB
	m, err := b.openMonitor()
	monitorBuffer = old
	if err != nil {
		t.Fatal(err)
	}
	defer b.closeMonitor(m)
	// Another program changes another table so much that notifications
	// are lost: Watch cannot know what they were and must report. The
	// loop starts reading only after the change, so that the overflow
	// does not depend on how fast it is scheduled.
	ns.nft(t, "add", "table", "inet", "other")
	ns.nft(t, "add", "set", "inet", "other", "s", "{ type ipv4_addr; }")
	var elems strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&elems, "10.%d.%d.%d,", i>>16&255, i>>8&255, i&255)
	}
	ns.nft(t, "add", "element", "inet", "other", "s", "{ "+strings.TrimSuffix(elems.String(), ",")+" }")
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{calls: make(chan struct{}, 100), done: make(chan error, 1), stop: cancel}
	stop := context.AfterFunc(ctx, func() { _ = m.conn.Close() })
	defer stop()
	go func() { w.done <- b.watchLoop(ctx, m, func() { w.calls <- struct{}{} }) }()
	t.Cleanup(func() { cancel(); <-w.done })
	w.expectCall(t, "lost notifications")
}
