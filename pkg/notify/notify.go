// Package notify tells webhooks of the daemon's bans: a JSON POST per ban
// (bans close together go as one), per unban, and a periodic digest, each
// with a one-line "text" field that Slack's and Mattermost's incoming
// webhooks and Matrix's hook bridges (hookshot) show as a message, beside
// structured fields for programs.
//
// The daemon hands events to a Notifier with Notify, which never waits for
// the network: each webhook keeps, under a lock, what it has not sent yet
// as counts per jail and at most MaxItems listed bans (the others are left
// out of the list, counted in Counters.Dropped and in the message's
// "omitted"), so memory stays bounded however many bans come and however
// long a webhook is down. Each webhook's own goroutine (started by Run)
// waits Coalesce after the first event of a quiet spell, then posts what
// came meanwhile as one message; what comes while it posts goes in the
// next message. A POST is tried again on network errors, 5xx and 429
// after 1 s, 2 s and 4 s (or the Retry-After asked for, up to a minute),
// and given up (Counters.Failed) after that or on another status.
package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/banwatch/banwatch/pkg/config"
)

// MaxItems is how many bans one message lists at most; the others are
// counted in its totals only.
const MaxItems = 100

// maxNetworks bounds the networks a digest period counts bans of; beyond
// it, bans of new networks are counted per jail only.
const maxNetworks = 10_000

// finalWait is how long Run tries, once, to post what is pending when its
// context ends.
const finalWait = 2 * time.Second

// DefaultBackoff is the wait before each retry of a failed POST.
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}

// Event is a ban or an unban, as the daemon hands it to Notify. It is a
// copy: the notifier keeps no reference to the daemon's bans.
type Event struct {
	Kind    string // config.NotifyBan or config.NotifyUnban
	Prefix  netip.Prefix
	Jail    string
	Origin  string    // ban.OriginJail, ...
	Start   time.Time // the ban's start
	Until   time.Time // the ban's end (for an unban, the end it had)
	Strikes int
	Reason  string
	By      string // who lifted the ban (unban), or made it (manual ban)
}

// Counters count what a Notifier did; the daemon keeps them across
// notifiers (a reload with a new [notify] makes a new one). Safe for
// concurrent use.
type Counters struct {
	Sent    atomic.Int64 // messages a webhook took (2xx)
	Failed  atomic.Int64 // messages given up: retries used up, another status, or the daemon stopping
	Dropped atomic.Int64 // bans and unbans left out of a message's list (beyond MaxItems), counted in its totals only
}

// Clock tells the time and makes timers; tests step a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed (at once
	// for d <= 0).
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options are a Notifier's optional parts.
type Options struct {
	// Counters, when set, is counted in; otherwise the Notifier's own.
	Counters *Counters
	// Active, when set, gives the digest the active bans per jail.
	Active func(ctx context.Context) (map[string]int, error)
	// Clock drives coalescing and digests (default: the real time);
	// Backoff the waits between tries (default DefaultBackoff), which
	// always use real timers.
	Clock   Clock
	Backoff []time.Duration
	// Client, when set, sends the requests (each webhook's timeout still
	// applies per try); Host replaces cfg.Host and the host name;
	// UserAgent is sent as such (default "banwatch").
	Client    *http.Client
	Host      string
	UserAgent string
}

// Notifier sends the daemon's bans to the configured webhooks. Notify and
// Expired are safe for concurrent use and may be called before Run, or
// after it returned (then nothing more is sent).
type Notifier struct {
	hooks    []*hook
	host     string
	counters *Counters
	opts     Options
	log      *slog.Logger
}

// New makes a Notifier for cfg (validated by package config); with no
// webhooks it sends nothing. log is tagged per webhook.
func New(cfg config.Notify, log *slog.Logger, opts Options) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Counters == nil {
		opts.Counters = &Counters{}
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "banwatch"
	}
	host := opts.Host
	if host == "" {
		host = cfg.Host
	}
	if host == "" {
		if h, err := os.Hostname(); err == nil {
			host = h
		} else {
			host = "localhost"
		}
	}
	n := &Notifier{host: host, counters: opts.Counters, opts: opts, log: log}
	now := opts.Clock.Now()
	for i, w := range cfg.Webhooks {
		client := &http.Client{Timeout: w.Timeout}
		if opts.Client != nil {
			c := *opts.Client
			c.Timeout = w.Timeout
			client = &c
		}
		h := &hook{n: n, cfg: w, client: client, kick: make(chan struct{}, 1),
			log: log.With("webhook", fmt.Sprintf("%d %s", i+1, w.Redacted()))}
		h.jails = map[string]bool{}
		for _, j := range w.Jails {
			h.jails[j] = true
		}
		h.period.reset(now)
		n.hooks = append(n.hooks, h)
	}
	return n
}

// Notify hands events to the webhooks that want them. It never waits for
// the network: it counts the events into each webhook's pending message
// under a lock held for as long as that takes.
func (n *Notifier) Notify(evs ...Event) {
	if n == nil {
		return
	}
	for _, h := range n.hooks {
		h.add(evs)
	}
}

// Expired counts bans that ran out (the store closed them) for the next
// digests; expiries are not notified one by one.
func (n *Notifier) Expired(count int) {
	if n == nil || count <= 0 {
		return
	}
	for _, h := range n.hooks {
		h.mu.Lock()
		h.period.expired += count
		h.mu.Unlock()
	}
}

// Host is the name the messages give this host.
func (n *Notifier) Host() string { return n.host }

// Run sends the webhooks' messages until ctx is done, then posts once
// what is still pending (for at most two seconds) and returns nil. Run is
// called once.
func (n *Notifier) Run(ctx context.Context) error {
	if len(n.hooks) == 0 {
		<-ctx.Done()
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, h := range n.hooks {
		g.Go(func() error {
			h.run(gctx)
			return nil
		})
	}
	return g.Wait()
}
