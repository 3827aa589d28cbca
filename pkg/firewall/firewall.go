// Package firewall defines how bans reach the kernel: the Backend
// interface, implemented by firewall/nft (nftables through netlink) and
// firewall/logonly (log what would be done, change nothing).
package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Jail is what a backend needs to know of one jail: its name (which names
// its sets) and the TCP ports its rule covers. No ports means every port and
// protocol.
type Jail struct {
	Name  string
	Ports []uint16

	// ConnLimit, if not nil, has the kernel limit the rate of new TCP
	// connections from each source address to the jail's ports (to any
	// TCP port if the jail has none). Backends that cannot do this ignore
	// it.
	ConnLimit *ConnLimit
}

// ConnLimit limits the rate at which one source address may open new
// connections to a jail's ports: a token bucket per source address that
// holds at most Burst connections and refills at Rate per Per. Connection
// attempts beyond it are dropped silently, without a log line.
//
// With Ban, a source that goes over the limit is moreover banned from the
// jail's ports for BanTimeout by the kernel itself. A backend that can
// report such sources implements FloodReporter, so that the daemon can
// record them as bans.
type ConnLimit struct {
	// Rate is how many new connections a source may open per Per, on
	// average. It must be at least 1.
	Rate uint64
	// Per is the unit of Rate: time.Second, time.Minute, time.Hour or
	// 24*time.Hour.
	Per time.Duration
	// Burst is how many connections a source may open at once (the size
	// of its bucket, full when the source is first seen). 0 means 5, the
	// nftables default.
	Burst uint32
	// Ban bans sources that go over the limit from the jail's ports for
	// BanTimeout.
	Ban bool
	// BanTimeout is how long a source that went over the limit stays
	// banned; it must be positive when Ban is set, and is ignored
	// otherwise.
	BanTimeout time.Duration
}

// ErrUnavailable is wrapped by the errors of a backend that cannot work on
// this host at all, whatever it is asked: the kernel lacks the feature, or
// the process lacks the privilege. Trying again does not help until an
// administrator changes the host or the daemon's privileges; the error's
// text says what to change.
var ErrUnavailable = errors.New("firewall unavailable")

// DefaultConnBurst is the burst of a ConnLimit whose Burst is 0.
const DefaultConnBurst = 5

// Validate reports whether the limit is one a backend can apply.
func (l *ConnLimit) Validate() error {
	switch {
	case l.Rate == 0:
		return errors.New("connection limit: rate must be at least 1")
	case l.Per != time.Second && l.Per != time.Minute && l.Per != time.Hour && l.Per != 24*time.Hour:
		return fmt.Errorf("connection limit: per %v, want 1s, 1m, 1h or 24h", l.Per)
	case l.Ban && l.BanTimeout < time.Second:
		return fmt.Errorf("connection limit: ban timeout %v, want at least 1s", l.BanTimeout)
	}
	return nil
}

// EffectiveBurst returns Burst, or DefaultConnBurst if Burst is 0.
func (l *ConnLimit) EffectiveBurst() uint32 {
	if l.Burst == 0 {
		return DefaultConnBurst
	}
	return l.Burst
}

// Entry is one ban as the kernel holds it: a prefix in a jail's set until
// Expires (the zero time: no expiry). A single address (/32, /128) goes to
// the jail's address set, wider prefixes to its prefix set.
//
// The end is absolute so that the kernel's ban ends when the store's does:
// a backend whose kernel counts a timeout counts it from Expires as it
// encodes each element, so that time spent before (a long batch, a wait
// for the kernel) does not lengthen the ban. Entries whose Expires has
// passed are skipped.
type Entry struct {
	Jail    string
	Prefix  netip.Prefix
	Expires time.Time
}

// Backend applies bans to the kernel.
//
// Setup must be called first, and again whenever the jail list changes
// (reload); it creates or updates what the backend owns (for nftables, one
// table) and nothing else. Add and Remove are batched: one call may carry
// any number of entries and is sent in as few kernel round trips as the
// kernel's message size allows. Adding an entry that is present refreshes
// its timeout; removing one that is absent is not an error. Reconcile makes
// the kernel hold exactly the given entries (the store's active bans),
// rebuilding without a window in which banned addresses get through. Check
// is cheap (it never reads set elements back) and reports whether what Setup
// made is still in place; the daemon calls Reconcile when it is not.
//
// Methods are not safe for concurrent use; the daemon calls them from one
// goroutine. Errors are wrapped with the backend's name.
type Backend interface {
	Setup(ctx context.Context, jails []Jail) error
	Add(ctx context.Context, entries []Entry) error
	Remove(ctx context.Context, entries []Entry) error
	Reconcile(ctx context.Context, entries []Entry) error
	Check(ctx context.Context) (ok bool, err error)
	Close() error
}

// A Watcher is a Backend that can tell when someone else changed what it
// owns (a flushed ruleset, a deleted table, set, chain or element). Watch
// calls changed, from its own goroutine, after each such change that the
// backend did not make itself, until ctx is done; then it returns nil. The
// daemon answers by calling Check and Reconcile.
type Watcher interface {
	Watch(ctx context.Context, changed func()) error
}

// A FloodReporter is a Backend whose kernel bans sources that went over a
// jail's connection limit (ConnLimit with Ban) by itself. Floods returns
// those bans as they stand: for each, the jail, the source as a single
// address prefix (/32 or /128), and when the ban ends as Expires (the zero
// time if it does not expire). The daemon calls it before it reconciles, to
// record these bans in its store. Floods must be called after Setup; it
// returns no entries for jails without ConnLimit.Ban.
//
// These kernel-made bans live apart from the entries: Reconcile leaves
// them in place, and Remove lifts them too (for single addresses), so that
// unbanning a flooder works.
type FloodReporter interface {
	Floods(ctx context.Context) ([]Entry, error)
}
