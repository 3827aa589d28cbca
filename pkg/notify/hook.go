package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
)

// maxRetryAfter is the longest Retry-After a webhook is obeyed for.
const maxRetryAfter = time.Minute

// hook is one webhook: what it has not sent yet, and its sender.
type hook struct {
	n      *Notifier
	cfg    config.Webhook
	client *http.Client
	log    *slog.Logger
	jails  map[string]bool // empty: every jail
	kick   chan struct{}   // an event came (capacity 1: never blocks)

	mu     sync.Mutex
	bans   group  // bans not sent yet
	unbans group  // unbans not sent yet
	period counts // for the next digest
}

// group is the events of one kind not sent yet.
type group struct {
	count int
	jails map[string]int
	items []Item // the first MaxItems
	by    string // who, when all events say the same
	mixed bool   // the events name different people
}

func (g *group) add(ev *Event, dropped *int) {
	if g.count == 0 {
		g.jails, g.by, g.mixed = map[string]int{}, ev.By, false
	} else if ev.By != g.by {
		g.mixed = true
	}
	g.count++
	g.jails[ev.Jail]++
	if len(g.items) < MaxItems {
		g.items = append(g.items, itemOf(ev))
	} else {
		*dropped++
	}
}

// counts are a digest period's.
type counts struct {
	since    time.Time
	bans     map[string]int
	unbans   map[string]int
	expired  int
	networks map[netip.Prefix]int
}

func (c *counts) reset(t time.Time) {
	*c = counts{since: t, bans: map[string]int{}, unbans: map[string]int{}, networks: map[netip.Prefix]int{}}
}

// network is the network a ban counts under in a digest: its /24 (IPv4)
// or /64 (IPv6), or the ban's own prefix when that is wider.
func network(p netip.Prefix) netip.Prefix {
	bits := 24
	if p.Addr().Is6() {
		bits = 64
	}
	if p.Bits() < bits {
		return p
	}
	q, _ := p.Addr().Prefix(bits)
	return q
}

// add counts evs in, under the lock, and wakes the sender.
func (h *hook) add(evs []Event) {
	wantBan, wantUnban := h.cfg.Wants(config.NotifyBan), h.cfg.Wants(config.NotifyUnban)
	digest := h.cfg.Wants(config.NotifyDigest)
	added, dropped := false, 0
	h.mu.Lock()
	for i := range evs {
		ev := &evs[i]
		if len(h.jails) > 0 && !h.jails[ev.Jail] {
			continue
		}
		switch ev.Kind {
		case config.NotifyBan:
			if digest {
				h.period.bans[ev.Jail]++
				nw := network(ev.Prefix)
				if _, ok := h.period.networks[nw]; ok || len(h.period.networks) < maxNetworks {
					h.period.networks[nw]++
				}
			}
			if wantBan {
				h.bans.add(ev, &dropped)
				added = true
			}
		case config.NotifyUnban:
			if digest {
				h.period.unbans[ev.Jail]++
			}
			if wantUnban {
				h.unbans.add(ev, &dropped)
				added = true
			}
		}
	}
	h.mu.Unlock()
	if dropped > 0 {
		h.n.counters.Dropped.Add(int64(dropped))
	}
	if added {
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
}

// take returns the pending messages and starts afresh.
func (h *hook) take() []*Payload {
	h.mu.Lock()
	bans, unbans := h.bans, h.unbans
	h.bans, h.unbans = group{}, group{}
	h.mu.Unlock()
	t := h.n.opts.Clock.Now()
	var out []*Payload
	if bans.count > 0 {
		out = append(out, h.n.eventPayload(config.NotifyBan, &bans, t))
	}
	if unbans.count > 0 {
		out = append(out, h.n.eventPayload(config.NotifyUnban, &unbans, t))
	}
	return out
}

// run is the webhook's sender: it posts what add gathered, a Coalesce
// after the first event of a quiet spell, and the digests, until ctx is
// done; then it posts what is pending, once.
func (h *hook) run(ctx context.Context) {
	clock := h.n.opts.Clock
	var window, digest <-chan time.Time
	var due time.Time
	if h.cfg.Wants(config.NotifyDigest) {
		t := clock.Now()
		due = nextDigest(t, h.cfg.Digest, h.cfg.DigestAt)
		digest = clock.After(due.Sub(t))
	}
	for {
		select {
		case <-ctx.Done():
			h.final(ctx)
			return
		case <-h.kick:
			if window == nil {
				window = clock.After(h.cfg.Coalesce)
			}
		case <-window:
			window = nil
			for _, p := range h.take() {
				h.deliver(ctx, p, true)
			}
		case <-digest:
			h.deliver(ctx, h.digest(ctx), true)
			t := clock.Now()
			due = followingDigest(due, h.cfg.Digest)
			for !due.After(t) { // a long outage: skip the digests missed
				due = followingDigest(due, h.cfg.Digest)
			}
			digest = clock.After(due.Sub(t))
		}
	}
}

// final posts what is pending once, for at most finalWait, as the daemon
// stops.
func (h *hook) final(ctx context.Context) {
	ps := h.take()
	if len(ps) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWait)
	defer cancel()
	for _, p := range ps {
		h.deliver(fctx, p, false)
	}
}

// nextDigest is the first digest time after t: for a period of a day or
// more, the next at (time of day, local to t); for a period that divides
// a day, the next of the day's periods counted from at; otherwise a
// period from t.
func nextDigest(t time.Time, every, at time.Duration) time.Time {
	const day = 24 * time.Hour
	y, m, d := t.Date()
	h, mi := int(at/time.Hour), int(at%time.Hour/time.Minute)
	switch {
	case every >= day:
		n := time.Date(y, m, d, h, mi, 0, 0, t.Location())
		if !n.After(t) {
			n = time.Date(y, m, d+1, h, mi, 0, 0, t.Location())
		}
		return n
	case day%every == 0:
		start := time.Date(y, m, d-1, h, mi, 0, 0, t.Location())
		return start.Add((t.Sub(start)/every + 1) * every)
	}
	return t.Add(every)
}

// followingDigest is the digest time after the one at due: whole days
// later by the calendar (so that digest_at holds across daylight saving
// changes), or a period later.
func followingDigest(due time.Time, every time.Duration) time.Time {
	const day = 24 * time.Hour
	if every%day == 0 {
		return due.AddDate(0, 0, int(every/day))
	}
	return due.Add(every)
}

// digest makes the digest of the period ending now, and starts the next.
func (h *hook) digest(ctx context.Context) *Payload {
	t := h.n.opts.Clock.Now()
	h.mu.Lock()
	c := h.period
	h.period.reset(t)
	h.mu.Unlock()
	var active map[string]int
	if f := h.n.opts.Active; f != nil {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		all, err := f(actx)
		cancel()
		if err != nil {
			h.log.Warn("the digest goes without the active bans: counting them failed", "err", err)
		} else {
			active = map[string]int{}
			for j, n := range all {
				if len(h.jails) == 0 || h.jails[j] {
					active[j] = n
				}
			}
		}
	}
	return h.n.digestPayload(&c, active, t)
}

// deliver posts p, trying again after the backoff's waits when retry is
// set and the failure may pass (network errors, 5xx, 429).
func (h *hook) deliver(ctx context.Context, p *Payload, retry bool) {
	body, err := json.Marshal(p)
	if err != nil {
		h.n.counters.Failed.Add(1)
		h.log.Error("notification not sent: cannot encode it", "err", err)
		return
	}
	backoff := h.n.opts.Backoff
	if !retry {
		backoff = nil
	}
	for try := 0; ; try++ {
		status, wait, detail, err := h.post(ctx, body)
		if err == nil && status/100 == 2 {
			h.n.counters.Sent.Add(1)
			h.log.Debug("notification sent", "event", p.Event, "count", p.Count, "tries", try+1)
			return
		}
		again := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !again || try >= len(backoff) || ctx.Err() != nil {
			h.n.counters.Failed.Add(1)
			args := []any{"event", p.Event, "count", p.Count, "tries", try + 1}
			if err != nil {
				args = append(args, "err", err)
			} else {
				args = append(args, "status", status, "answer", detail)
			}
			h.log.Warn("notification given up", args...)
			return
		}
		if wait <= 0 || wait > maxRetryAfter {
			wait = backoff[try]
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
}

// post sends body once. It returns the status, the wait a 429 or 503
// asked for (Retry-After, in seconds), and the start of a non-2xx answer's
// body; errors never hold the URL, whose path is a secret.
func (h *hook) post(ctx context.Context, body []byte) (status int, retryAfter time.Duration, detail string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", errors.New("bad request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", h.n.opts.UserAgent)
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
		}
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		detail = strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			retryAfter = time.Duration(s) * time.Second
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, retryAfter, detail, nil
}
