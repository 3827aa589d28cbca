package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json with the payloads made")

// t0 is the fake clock's start: a Saturday morning, UTC.
var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// fakeClock is a Clock that moves only when Advance is called.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	if d <= 0 {
		c <- f.now
		return c
	}
	f.waiters = append(f.waiters, fakeWaiter{at: f.now.Add(d), c: c})
	return c
}

// Advance moves the clock by d and fires the timers due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
			continue
		}
		w.c <- f.now
	}
	f.waiters = kept
}

// waitTimers waits until n timers are pending (the sender made them).
func (f *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		got := len(f.waiters)
		f.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d timers pending, want %d", len(f.waiters), n)
}

// recorder is a webhook endpoint on loopback: it answers with the
// statuses queued (then 200) and hands each request's body on bodies.
type recorder struct {
	srv     *httptest.Server
	bodies  chan []byte
	headers chan http.Header
	mu      sync.Mutex
	status  []int
	hold    chan struct{} // when set, each request waits for it to close
	n       int
}

func newRecorder(t *testing.T, status ...int) *recorder {
	r := &recorder{bodies: make(chan []byte, 100), headers: make(chan http.Header, 100), status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.n++
		st := http.StatusOK
		if len(r.status) > 0 {
			st, r.status = r.status[0], r.status[1:]
		}
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			<-hold
		}
		r.headers <- req.Header.Clone()
		r.bodies <- body
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(st)
		fmt.Fprintf(w, "status %d", st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// next returns the next body posted, decoded.
func (r *recorder) next(t *testing.T) (*Payload, []byte) {
	t.Helper()
	select {
	case b := <-r.bodies:
		var p Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("bad JSON %s: %v", b, err)
		}
		return &p, b
	case <-time.After(10 * time.Second):
		t.Fatal("no POST within 10s")
	}
	return nil, nil
}

func webhook(url string, mod func(w *config.Webhook)) config.Webhook {
	w := config.Webhook{URL: url, Events: []string{config.NotifyBan, config.NotifyDigest, config.NotifyUnban},
		Digest: 24 * time.Hour, Coalesce: 2 * time.Second, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&w)
	}
	return w
}

// start runs a notifier of one webhook until the test ends.
func start(t *testing.T, w config.Webhook, opts Options) (*Notifier, context.CancelFunc, chan error) {
	t.Helper()
	opts.Host = "mx1"
	if opts.Backoff == nil {
		opts.Backoff = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	}
	n := New(config.Notify{Webhooks: []config.Webhook{w}}, slog.New(slog.DiscardHandler), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of the cancel")
		}
	})
	return n, cancel, done
}

func banOf(ip, jail string, strikes int, reason string, d time.Duration) Event {
	p, _ := netip.ParsePrefix(ip)
	if !strings.Contains(ip, "/") {
		a := netip.MustParseAddr(ip)
		p = netip.PrefixFrom(a, a.BitLen())
	}
	start := t0.Add(-time.Minute)
	return Event{Kind: config.NotifyBan, Prefix: p, Jail: jail, Origin: "jail", Start: start, Until: start.Add(d),
		Strikes: strikes, Reason: reason}
}

func unbanOf(ip, jail, by string) Event {
	e := banOf(ip, jail, 5, "auth_failure", 7*24*time.Hour)
	e.Kind, e.By = config.NotifyUnban, by
	return e
}

// The payloads, compared with testdata/NAME.json (go test -run
// TestPayloads -update rewrites them).
func TestPayloads(t *testing.T) {
	const week = 7 * 24 * time.Hour
	manual := banOf("192.0.2.44", "manual", 0, "manual ban by uid 0", 24*time.Hour)
	manual.Origin, manual.By = "manual", "uid 0"
	cases := []struct {
		name   string
		events []string
		evs    []Event
		digest bool // advance to the digest instead of the coalescing window
	}{
		{"ban", []string{"ban"}, []Event{banOf("203.0.113.7", "postfix", 5, "auth_failure", week)}, false},
		{"ban-manual", []string{"ban"}, []Event{manual}, false},
		{"ban-hostile", []string{"ban"}, []Event{banOf("203.0.113.8", "postfix", 1, "instant helo=<!channel> @room [x](http://e.example) `y`", week)}, false},
		{"bans-coalesced", []string{"ban"}, []Event{
			banOf("203.0.113.7", "postfix", 5, "auth_failure", week),
			banOf("203.0.113.9", "postfix", 6, "auth_failure,bad_helo", week),
			banOf("2001:db8::5", "sshd", 5, "auth_failure", 24*time.Hour),
			banOf("198.51.100.0/24", "postfix", 0, "subnet: 3 addresses of 198.51.100.0/24 banned", week),
			banOf("203.0.113.10", "postfix", 1, "instant helo=ylmf-pc", 14*24*time.Hour),
		}, false},
		{"unban", []string{"unban"}, []Event{unbanOf("203.0.113.7", "postfix", "uid 0")}, false},
		{"unbans", []string{"unban"}, []Event{unbanOf("203.0.113.7", "postfix", "uid 0"), unbanOf("203.0.113.9", "postfix", "uid 0"),
			unbanOf("192.0.2.44", "manual", "uid 0")}, false},
		{"digest", []string{"digest"}, []Event{
			banOf("203.0.113.7", "postfix", 5, "auth_failure", week),
			banOf("203.0.113.9", "postfix", 5, "auth_failure", week),
			banOf("203.0.113.200", "postfix", 5, "auth_failure", week),
			banOf("198.51.100.3", "postfix", 5, "auth_failure", week),
			banOf("198.51.100.4", "postfix", 5, "auth_failure", week),
			banOf("2001:db8::5", "sshd", 5, "auth_failure", week),
			banOf("2001:db8::6", "sshd", 5, "auth_failure", week),
			banOf("192.0.2.1", "sshd", 5, "auth_failure", week),
			unbanOf("203.0.113.7", "postfix", "uid 0"),
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder(t)
			clk := newFakeClock(t0)
			w := webhook(rec.srv.URL+"/hooks/secret", func(w *config.Webhook) {
				w.Events = c.events
				w.DigestAt = 8 * time.Hour
				w.Headers = map[string]string{"Authorization": "Bearer s3cret"}
			})
			n, _, _ := start(t, w, Options{Clock: clk, UserAgent: "banwatch/test",
				Active: func(context.Context) (map[string]int, error) {
					return map[string]int{"postfix": 40, "sshd": 2, "manual": 1}, nil
				}})
			n.Notify(c.evs...)
			if c.digest {
				n.Expired(7)
				clk.waitTimers(t, 1)
				clk.Advance(22 * time.Hour) // to 08:00 the next day
			} else {
				clk.waitTimers(t, 1)
				clk.Advance(2 * time.Second)
			}
			_, body := rec.next(t)
			h := <-rec.headers
			if h.Get("Authorization") != "Bearer s3cret" || h.Get("Content-Type") != "application/json" || h.Get("User-Agent") != "banwatch/test" {
				t.Errorf("headers %v", h)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", c.name+".json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestPayloads -update writes it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("payload differs from %s:\n%s", golden, pretty.Bytes())
			}
		})
	}
}

// Network errors, 5xx and 429 are tried again, up to three times; other
// statuses are given up at once.
func TestRetries(t *testing.T) {
	cases := []struct {
		name           string
		status         []int
		requests       int
		sent, failed   int64
		closedEndpoint bool
	}{
		{"ok", nil, 1, 1, 0, false},
		{"500 then ok", []int{500, 502}, 3, 1, 0, false},
		{"429 then ok", []int{429}, 2, 1, 0, false},
		{"500 for good", []int{500, 500, 500, 500, 500}, 4, 0, 1, false},
		{"400", []int{400}, 1, 0, 1, false},
		{"503 then 404", []int{503, 404}, 2, 0, 1, false},
		{"401", []int{401}, 1, 0, 1, false},
		{"connection refused", nil, 0, 0, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder(t, c.status...)
			url := rec.srv.URL + "/hook"
			if c.closedEndpoint {
				rec.srv.Close()
			}
			var cnt Counters
			w := webhook(url, func(w *config.Webhook) { w.Coalesce = 0 })
			n, _, _ := start(t, w, Options{Counters: &cnt})
			n.Notify(banOf("203.0.113.7", "postfix", 5, "auth_failure", time.Hour))
			deadline := time.Now().Add(10 * time.Second)
			for cnt.Sent.Load()+cnt.Failed.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := rec.requests(); got != c.requests {
				t.Errorf("%d requests, want %d", got, c.requests)
			}
			if cnt.Sent.Load() != c.sent || cnt.Failed.Load() != c.failed {
				t.Errorf("sent %d failed %d, want %d and %d", cnt.Sent.Load(), cnt.Failed.Load(), c.sent, c.failed)
			}
		})
	}
}

// While a webhook hangs, Notify still returns at once: what comes is
// counted, and beyond MaxItems left out of the list and counted as
// dropped; the next message tells the whole count.
func TestNotifyNeverBlocks(t *testing.T) {
	rec := newRecorder(t)
	hold := make(chan struct{})
	rec.mu.Lock()
	rec.hold = hold
	rec.mu.Unlock()
	var cnt Counters
	w := webhook(rec.srv.URL, func(w *config.Webhook) { w.Coalesce = 0 })
	n, _, _ := start(t, w, Options{Counters: &cnt})
	n.Notify(banOf("192.0.2.1", "postfix", 5, "auth_failure", time.Hour))
	for rec.requests() == 0 { // the first POST hangs in the endpoint
		time.Sleep(time.Millisecond)
	}
	var burst []Event
	for i := range 10_000 {
		burst = append(burst, banOf(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "postfix", 5, "auth_failure", time.Hour))
	}
	n.Notify(burst...) // one call of 10,000
	for i := range 10_000 {
		n.Notify(banOf(fmt.Sprintf("10.100.%d.%d", i/256, i%256), "sshd", 5, "auth_failure", time.Hour))
	}
	// Reaching this line is the test: nothing above waited for the endpoint.
	if got := cnt.Dropped.Load(); got != 20_000-MaxItems {
		t.Errorf("dropped %d, want %d", got, 20_000-MaxItems)
	}
	close(hold)
	if p, _ := rec.next(t); p.Count != 1 {
		t.Errorf("first message count %d", p.Count)
	}
	p, _ := rec.next(t)
	if p.Count != 20_000 || len(p.Bans) != MaxItems || p.Omitted != 20_000-MaxItems || p.Jails["postfix"] != 10_000 || p.Jails["sshd"] != 10_000 {
		t.Errorf("second message: count %d, %d listed, omitted %d, jails %v", p.Count, len(p.Bans), p.Omitted, p.Jails)
	}
	if want := "banwatch mx1: banned 20,000 addresses: 10,000 in postfix, 10,000 in sshd (e.g. 10.0.0.1, 10.0.1.1, 10.0.2.1)"; p.Text != want {
		t.Errorf("text %q\nwant %q", p.Text, want)
	}
}

// A burst of bans within the coalescing window is one POST.
func TestCoalesce(t *testing.T) {
	rec := newRecorder(t)
	clk := newFakeClock(t0)
	w := webhook(rec.srv.URL, func(w *config.Webhook) { w.Events = []string{"ban"} })
	n, _, _ := start(t, w, Options{Clock: clk})
	for i := range 1200 {
		n.Notify(banOf(fmt.Sprintf("10.0.%d.%d", i/256, i%256), "postfix", 5, "auth_failure", time.Hour))
	}
	var sshd []Event
	for i := range 34 {
		sshd = append(sshd, banOf(fmt.Sprintf("10.1.0.%d", i), "sshd", 5, "auth_failure", time.Hour))
	}
	n.Notify(sshd...)
	clk.waitTimers(t, 1)
	clk.Advance(2 * time.Second)
	p, _ := rec.next(t)
	if want := "banwatch mx1: banned 1,234 addresses: 1,200 in postfix, 34 in sshd (e.g. 10.0.0.0, 10.0.0.1, 10.0.0.2)"; p.Text != want {
		t.Errorf("text %q\nwant %q", p.Text, want)
	}
	// The next ban is a message of its own: the first held them all.
	n.Notify(banOf("192.0.2.9", "postfix", 5, "auth_failure", time.Hour))
	clk.waitTimers(t, 1)
	clk.Advance(2 * time.Second)
	if p, _ := rec.next(t); p.Count != 1 || p.Bans[0].IP != "192.0.2.9" {
		t.Errorf("second message %+v", p)
	}
	if rec.requests() != 2 {
		t.Errorf("%d POSTs, want 2", rec.requests())
	}
}

// A webhook limited to jails hears of those only; the digest counts them
// only.
func TestJailFilter(t *testing.T) {
	rec := newRecorder(t)
	clk := newFakeClock(t0)
	w := webhook(rec.srv.URL, func(w *config.Webhook) { w.Jails = []string{"sshd"}; w.Digest = time.Hour })
	n, _, _ := start(t, w, Options{Clock: clk})
	n.Notify(banOf("192.0.2.1", "postfix", 5, "auth_failure", time.Hour), banOf("192.0.2.2", "sshd", 5, "auth_failure", time.Hour))
	clk.waitTimers(t, 2) // the digest's and the window's
	clk.Advance(2 * time.Second)
	if p, _ := rec.next(t); p.Count != 1 || p.Bans[0].Jail != "sshd" {
		t.Errorf("message %+v", p)
	}
	clk.waitTimers(t, 1)
	clk.Advance(time.Hour)
	if p, _ := rec.next(t); p.Event != "digest" || len(p.Digest.Bans) != 1 || p.Digest.Bans["sshd"] != 1 {
		t.Errorf("digest %+v", p.Digest)
	}
}

// The digest times: periods of a day or more at digest_at; periods that
// divide a day counted from digest_at; others from the start.
func TestNextDigest(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		now       string
		every, at time.Duration
		want      string
	}{
		{"2026-11-28 10:00", 24 * time.Hour, 8 * time.Hour, "2026-11-29 08:00"},
		{"2026-11-28 07:59", 24 * time.Hour, 8 * time.Hour, "2026-11-28 08:00"},
		{"2026-11-28 08:00", 24 * time.Hour, 8 * time.Hour, "2026-11-29 08:00"},
		{"2026-11-28 10:00", 7 * 24 * time.Hour, 0, "2026-11-29 00:00"},
		{"2026-11-28 10:20", time.Hour, 0, "2026-11-28 11:00"},
		{"2026-11-28 10:20", 6 * time.Hour, 8*time.Hour + 30*time.Minute, "2026-11-28 14:30"},
		{"2026-11-28 03:00", 6 * time.Hour, 8*time.Hour + 30*time.Minute, "2026-11-28 08:30"},
		{"2026-11-28 10:20", 7 * time.Hour, 0, "2026-11-28 17:20"},
	}
	for _, c := range cases {
		if got := nextDigest(at(c.now), c.every, c.at); !got.Equal(at(c.want)) {
			t.Errorf("nextDigest(%s, %v, %v) = %s, want %s", c.now, c.every, c.at, got.Format("2006-01-02 15:04"), c.want)
		}
	}
	if got := followingDigest(at("2026-11-28 08:00"), 7*24*time.Hour); !got.Equal(at("2026-12-05 08:00")) {
		t.Errorf("following weekly digest %s", got)
	}
}

// Cancelling Run's context posts what is pending once and returns, also
// when the endpoint hangs.
func TestShutdown(t *testing.T) {
	t.Run("pending posted", func(t *testing.T) {
		rec := newRecorder(t)
		w := webhook(rec.srv.URL, func(w *config.Webhook) { w.Coalesce = time.Hour })
		n, cancel, done := start(t, w, Options{})
		n.Notify(banOf("192.0.2.1", "postfix", 5, "auth_failure", time.Hour))
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
		if p, _ := rec.next(t); p.Count != 1 {
			t.Errorf("final message %+v", p)
		}
		done <- nil // for the cleanup
	})
	t.Run("endpoint hangs", func(t *testing.T) {
		rec := newRecorder(t)
		hold := make(chan struct{})
		defer close(hold)
		rec.mu.Lock()
		rec.hold = hold
		rec.mu.Unlock()
		var cnt Counters
		w := webhook(rec.srv.URL, func(w *config.Webhook) { w.Coalesce = 0 })
		n, cancel, done := start(t, w, Options{Counters: &cnt})
		n.Notify(banOf("192.0.2.1", "postfix", 5, "auth_failure", time.Hour))
		for rec.requests() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return while the endpoint hangs")
		}
		if cnt.Failed.Load() != 1 {
			t.Errorf("failed %d, want 1", cnt.Failed.Load())
		}
		done <- nil
	})
	t.Run("no webhooks", func(t *testing.T) {
		n := New(config.Notify{}, nil, Options{})
		n.Notify(banOf("192.0.2.1", "postfix", 5, "auth_failure", time.Hour))
		n.Expired(3)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := n.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestDefang(t *testing.T) {
	for in, want := range map[string]string{
		"auth_failure,bad_helo":                       "auth_failure,bad_helo",
		"fingerprint user=admin@example.com":          "fingerprint user=admin@example.com",
		"instant helo=@channel":                       "instant helo=(at)channel",
		"@room hello":                                 "(at)room hello",
		"<!here|x> & [a](b) `c`":                      "?!here|x? ? ?a?(b) ?c?",
		"line\nbreak\x00":                             "line break ",
		"subnet: 3 addresses of 198.18.7.0/24 banned": "subnet: 3 addresses of 198.18.7.0/24 banned",
		strings.Repeat("a", 250):                      strings.Repeat("a", 200) + "…",
	} {
		if got := defang(in); got != want {
			t.Errorf("defang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
