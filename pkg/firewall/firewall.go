// Package firewall defines how bans reach the kernel: the Backend
// interface, implemented by firewall/nft (nftables through netlink) and
// firewall/logonly (log what would be done, change nothing).
package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Jail is what a backend needs to know of one jail: its name (which names
// its sets) and the TCP ports its rule covers. No ports means every port and
// protocol.
type Jail struct {
	Name  string
	Ports []uint16
}

// Entry is one ban as the kernel holds it: a prefix in a jail's set, for
// Timeout from the moment it is applied. A single address (/32, /128) goes
// to the jail's address set, wider prefixes to its prefix set.
type Entry struct {
	Jail    string
	Prefix  netip.Prefix
	Timeout time.Duration
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
