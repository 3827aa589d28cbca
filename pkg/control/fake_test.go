package control

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
)

// fakeHandler answers every request with nothing after wait, and records
// what the server handed it. It is safe for concurrent use, as a Handler
// must be.
type fakeHandler struct {
	wait time.Duration // how long each call takes

	mu      sync.Mutex
	calls   []string // the methods called, in order
	peers   []Peer   // the peer of each call that has one
	ctxErrs []error  // the context's error at the end of each call
	bans    []BanRequest
	bulk    []BulkBanRequest
	unbans  []UnbanRequest
	forgets []ForgetRequest
	stats   []statsCall

	// What Top and Hours answer (nil: an empty answer).
	top   *TopReply
	hours *HoursReply
}

// statsCall is what Top or Hours got.
type statsCall struct {
	Since time.Time
	N     int    // Top's
	Jail  string // Hours'
}

var _ Handler = (*fakeHandler)(nil)

// call records a call of method, waits, and records the context's state.
func (f *fakeHandler) call(ctx context.Context, method string, peer *Peer, record func()) {
	if f.wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(f.wait):
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	f.ctxErrs = append(f.ctxErrs, ctx.Err())
	if peer != nil {
		f.peers = append(f.peers, *peer)
	}
	if record != nil {
		record()
	}
}

// called returns the methods called so far.
func (f *fakeHandler) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeHandler) Status(ctx context.Context) (*Status, error) {
	f.call(ctx, "Status", nil, nil)
	return &Status{}, nil
}

func (f *fakeHandler) Active(ctx context.Context, _ string, _ netip.Prefix, _ func(*ban.Ban) error) error {
	f.call(ctx, "Active", nil, nil)
	return nil
}

func (f *fakeHandler) History(ctx context.Context, _ HistoryQuery, _ func(*ban.Ban) error) error {
	f.call(ctx, "History", nil, nil)
	return nil
}

func (f *fakeHandler) Ban(ctx context.Context, req BanRequest, peer Peer) ([]ban.Ban, error) {
	f.call(ctx, "Ban", &peer, func() { f.bans = append(f.bans, req) })
	return nil, nil
}

func (f *fakeHandler) BulkBan(ctx context.Context, req BulkBanRequest, peer Peer) ([]ban.Ban, []Refusal, error) {
	f.call(ctx, "BulkBan", &peer, func() { f.bulk = append(f.bulk, req) })
	return nil, nil, nil
}

func (f *fakeHandler) Unban(ctx context.Context, req UnbanRequest, peer Peer) ([]ban.Ban, error) {
	f.call(ctx, "Unban", &peer, func() { f.unbans = append(f.unbans, req) })
	return nil, nil
}

func (f *fakeHandler) Reload(ctx context.Context) error {
	f.call(ctx, "Reload", nil, nil)
	return nil
}

func (f *fakeHandler) Fingerprints(ctx context.Context, _ string) ([]Fingerprint, error) {
	f.call(ctx, "Fingerprints", nil, nil)
	return nil, nil
}

func (f *fakeHandler) Forget(ctx context.Context, value, jail string, peer Peer) ([]Fingerprint, error) {
	f.call(ctx, "Forget", &peer, func() { f.forgets = append(f.forgets, ForgetRequest{Value: value, Jail: jail}) })
	return nil, nil
}

func (f *fakeHandler) Top(ctx context.Context, since time.Time, n int) (*TopReply, error) {
	f.call(ctx, "Top", nil, func() { f.stats = append(f.stats, statsCall{Since: since, N: n}) })
	if f.top != nil {
		return f.top, nil
	}
	return &TopReply{Since: since}, nil
}

func (f *fakeHandler) Hours(ctx context.Context, since time.Time, jail string) (*HoursReply, error) {
	f.call(ctx, "Hours", nil, func() { f.stats = append(f.stats, statsCall{Since: since, Jail: jail}) })
	if f.hours != nil {
		return f.hours, nil
	}
	return &HoursReply{Since: since}, nil
}
