//go:build linux

package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// monitorBuffer is the receive buffer asked for on Watch sockets (a
// variable for tests).
var monitorBuffer = socketBuffer

// monitor is a netlink socket subscribed to nftables change notifications.
type monitor struct {
	conn *netlink.Conn
}

// event is what a notification means to Watch.
type event int

const (
	evNone       event = iota // not ours to care about
	evChange                  // someone else changed our table
	evGeneration              // end of a transaction
)

// Watch calls changed after each transaction by another program that
// deletes or flushes our table, chain, rules, sets or set elements, adds or
// replaces rules or chains in our table, or changes the table itself (such
// as making it dormant). Additions of sets or elements by others are
// ignored, as they cannot let a banned address through.
//
// The connection-limit rules add and refresh meter and flood set elements
// from packets (dynset); the kernel sends no notification for those, nor
// when such elements expire. Notifications that carry port ID 0 (made by
// the kernel, not by a program) are ignored as well.
//
// Our own changes are told apart by the netlink port ID the kernel stamps on
// each notification: a socket filter drops those of the backend's socket
// before they are queued, so even a Reconcile of a million elements does not
// load the monitor. Elements expiring by timeout cause no notification. If
// the kernel drops notifications because the socket's buffer overflowed
// (another program made a huge change), Watch cannot know what was lost and
// calls changed once the burst is over: a possibly spurious call rather
// than a missed one.
//
// Watch returns nil when ctx is done, or an error if the socket fails.
func (b *Backend) Watch(ctx context.Context, changed func()) error {
	m, err := b.openMonitor()
	if err != nil {
		return fmt.Errorf("nft: watch: %w", err)
	}
	defer b.closeMonitor(m)
	stop := context.AfterFunc(ctx, func() { _ = m.conn.Close() })
	defer stop()
	return b.watchLoop(ctx, m, changed)
}

// settle is how long Watch waits for a burst of notifications to end after
// it lost some, before it reports the change.
const settle = 50 * time.Millisecond

// watchLoop reads notifications until the socket is closed. A change is
// reported at the end of the transaction that made it. Lost notifications
// count as a change, reported once the burst is over: when no notification
// has come for settle.
func (b *Backend) watchLoop(ctx context.Context, m *monitor, changed func()) error {
	dirty, lost := false, false
	report := func() {
		if dirty && !lost {
			dirty = false
			changed()
		}
	}
	for {
		msgs, err := m.conn.Receive()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			if !lost {
				b.log.Warn("nftables notifications lost (receive buffer overflow), assuming a change")
			}
			dirty, lost = true, true
			_ = m.conn.SetReadDeadline(time.Now().Add(settle))
			continue
		case lost && errors.Is(err, os.ErrDeadlineExceeded):
			_ = m.conn.SetReadDeadline(time.Time{})
			lost = false
			report()
			continue
		default:
			return fmt.Errorf("nft: watch: %w", err)
		}
		if lost {
			_ = m.conn.SetReadDeadline(time.Now().Add(settle))
		}
		for _, msg := range msgs {
			switch b.classify(msg) {
			case evChange:
				dirty = true
			case evGeneration:
				report()
			}
		}
	}
}

// openMonitor opens a notification socket in the backend's namespace, with
// a filter that drops notifications caused by the backend itself.
func (b *Backend) openMonitor() (*monitor, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: b.netns})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	m := &monitor{conn: conn}
	_ = withFD(conn, func(fd int) error {
		setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, monitorBuffer)
		return nil
	})
	b.mu.Lock()
	err = m.filter(b.ownPIDs)
	b.monitors[m] = true
	b.mu.Unlock()
	if err != nil {
		// Not fatal: classify also skips our own notifications, they
		// just take up buffer space.
		b.log.Warn("cannot filter own nftables notifications in the kernel", "err", err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		b.closeMonitor(m)
		return nil, fmt.Errorf("join nftables group: %w", err)
	}
	return m, nil
}

// closeMonitor unregisters and closes a monitor.
func (b *Backend) closeMonitor(m *monitor) {
	b.mu.Lock()
	delete(b.monitors, m)
	b.mu.Unlock()
	_ = m.conn.Close()
}

// filter installs the socket filter dropping the given port IDs. Called
// with b.mu held.
func (m *monitor) filter(pids [2]uint32) error {
	var keep []uint32
	for _, p := range pids {
		if p != 0 {
			keep = append(keep, p)
		}
	}
	return attachFilter(m.conn, dropPIDFilter(keep...))
}

// setOwnPID records the port ID of a new backend socket (keeping the
// previous one, whose notifications may still be in flight) and updates the
// filters of running monitors.
func (b *Backend) setOwnPID(pid uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ownPIDs = [2]uint32{pid, b.ownPIDs[0]}
	for m := range b.monitors {
		if err := m.filter(b.ownPIDs); err != nil {
			b.log.Warn("cannot update nftables notification filter", "err", err)
		}
	}
}

// isOwn reports whether a notification was caused by the backend.
func (b *Backend) isOwn(pid uint32) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return pid != 0 && (pid == b.ownPIDs[0] || pid == b.ownPIDs[1])
}

// classify tells what a notification means for Watch.
func (b *Backend) classify(msg netlink.Message) event {
	t := msg.Header.Type
	if int(t>>8) != unix.NFNL_SUBSYS_NFTABLES {
		return evNone
	}
	typ := int(t & 0xff)
	if typ == unix.NFT_MSG_NEWGEN {
		return evGeneration
	}
	// Port ID 0 marks a change made by the kernel itself, not by a
	// program; nothing the kernel does on its own to our table calls for
	// a Reconcile.
	if !watched(typ) || msg.Header.PID == 0 || b.isOwn(msg.Header.PID) {
		return evNone
	}
	if len(msg.Data) < 4 || msg.Data[0] != unix.NFPROTO_INET || tableOf(msg.Data[4:]) != b.table.Name {
		return evNone
	}
	b.log.Debug("nftables change by another program", "msg_type", typ, "port_id", msg.Header.PID)
	return evChange
}

// watched reports whether a message type is a change Watch reports.
func watched(typ int) bool {
	switch typ {
	case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE,
		unix.NFT_MSG_DELSET, unix.NFT_MSG_DELSETELEM,
		unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_NEWRULE:
		return true
	}
	return false
}

// tableOf extracts the table name from a notification's attributes: it is
// attribute 1 in table, chain, rule, set and set element messages alike.
func tableOf(attrs []byte) string {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String()
		}
	}
	return ""
}
