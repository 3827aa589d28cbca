//go:build linux

package nft

import (
	"context"
	"fmt"
	"iter"
	"net/netip"
	"time"

	"github.com/google/nftables"
)

// Batching limits. A set-element message carries its elements in one
// netlink attribute, whose length is 16 bits: github.com/mdlayher/netlink
// wraps longer lengths without an error, and the kernel then silently takes
// only some of the elements, so each message stays well below 64 KiB. A
// batch (one sendmsg, one kernel transaction) must fit the socket's send
// buffer; maxBatchBytes caps it further so that one transaction holds the
// nftables mutex for a few milliseconds only.
var (
	maxMsgBytes   = 60000
	maxBatchBytes = 1 << 20
)

// maxAttrBytes is the most a netlink attribute can hold (16-bit length,
// 4-byte header).
const maxAttrBytes = 65535 - 4

// msgOverhead is a generous estimate of a set-element message's size
// without its elements (headers, table and set names, set ID).
const msgOverhead = 64 + 2*256

// elemOp is what a group does to its elements.
type elemOp int

const (
	opAdd     elemOp = iota // add; existing elements keep their timeout
	opRefresh               // add, replacing the timeout of existing elements
	opDel                   // delete, whether or not the elements exist
)

// elemMsg is one set-element message: add or delete elems in set.
type elemMsg struct {
	set   *nftables.Set
	del   bool
	elems []nftables.SetElement
}

// elemGroup is a sequence of messages that must be committed together.
type elemGroup []elemMsg

// bytes estimates the encoded size of the group.
func (g elemGroup) bytes() int {
	n := 0
	for _, m := range g {
		n += msgOverhead + elemsBytes(m.elems)
	}
	return n
}

// elemBytes is the encoded size of one element in a message: the list
// entry, the key (nested value), and the optional timeout and flags.
func elemBytes(e nftables.SetElement) int {
	n := 4 + 4 + 4 + (len(e.Key)+3)&^3
	if e.Timeout != 0 {
		n += 4 + 8
	}
	if e.IntervalEnd {
		n += 4 + 4
	}
	return n
}

// elemsBytes sums elemBytes.
func elemsBytes(es []nftables.SetElement) int {
	n := 0
	for _, e := range es {
		n += elemBytes(e)
	}
	return n
}

// groups packs units (an element, or an interval's start and end element,
// which must not be split) into chunks that fit one message, and yields one
// group per chunk. Elements are built as they are consumed, so a Reconcile
// of a million addresses never holds them all as set elements.
func (b *Backend) groups(set *nftables.Set, op elemOp, units iter.Seq[[]nftables.SetElement]) iter.Seq[elemGroup] {
	return func(yield func(elemGroup) bool) {
		var chunk []nftables.SetElement
		size := 0
		for u := range units {
			n := elemsBytes(u)
			if size+n > maxMsgBytes && len(chunk) > 0 {
				if !yield(b.opGroup(set, op, chunk)) {
					return
				}
				// The next chunk will likely be as long.
				chunk, size = make([]nftables.SetElement, 0, len(chunk)+2), 0
			}
			chunk = append(chunk, u...)
			size += n
		}
		if len(chunk) > 0 {
			yield(b.opGroup(set, op, chunk))
		}
	}
}

// opGroup builds the messages for one chunk. A refresh on a kernel that
// ignores the timeout of a re-added element adds, deletes and adds again in
// one transaction, which works whether the element existed or not. A
// deletion adds first (a no-op for elements present) because the kernel
// fails a whole transaction that deletes an absent element.
func (b *Backend) opGroup(set *nftables.Set, op elemOp, es []nftables.SetElement) elemGroup {
	switch {
	case op == opRefresh && !b.nativeRefresh:
		return elemGroup{{set: set, elems: es}, {set: set, del: true, elems: bare(es)}, {set: set, elems: es}}
	case op == opDel:
		es = bare(es)
		return elemGroup{{set: set, elems: es}, {set: set, del: true, elems: es}}
	}
	return elemGroup{{set: set, elems: es}}
}

// bare copies elements without their timeouts.
func bare(es []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(es))
	for i, e := range es {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
	}
	return out
}

// clock returns the time as Unix nanoseconds.
type clock func() int64

// wallClock is the clock elements' timeouts are counted on.
func wallClock() int64 { return time.Now().UnixNano() }

// addrUnits yields the elements for addresses, one at a time. Each
// element's timeout is counted from its expiry as it is built (that is,
// just before its batch is sent), so that a long batch does not lengthen
// the bans at its end.
func addrUnits(as []addrExp, now clock) iter.Seq[[]nftables.SetElement] {
	return func(yield func([]nftables.SetElement) bool) {
		var buf [1]nftables.SetElement // copied by the consumer
		for _, a := range as {
			buf[0] = addrElem(a.addr, a.exp, now())
			if !yield(buf[:]) {
				return
			}
		}
	}
}

// netUnits yields the elements for prefixes, one interval at a time,
// counting timeouts as addrUnits does.
func netUnits(ps map[netip.Prefix]int64, now clock) iter.Seq[[]nftables.SetElement] {
	return func(yield func([]nftables.SetElement) bool) {
		for p, exp := range ps {
			if !yield(netElems(p, exp, now())) {
				return
			}
		}
	}
}

// addrElem is the set element for a single address.
func addrElem(a netip.Addr, exp, now int64) nftables.SetElement {
	return nftables.SetElement{Key: a.AsSlice(), Timeout: timeoutAt(exp, now)}
}

// netElems are the interval set elements for a prefix: its first address
// with the timeout, and the address after its last flagged as the interval
// end (left out when the prefix reaches the top of the address space).
func netElems(p netip.Prefix, exp, now int64) []nftables.SetElement {
	es := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: timeoutAt(exp, now)}}
	if next := lastAddr(p).Next(); next.IsValid() {
		es = append(es, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
	}
	return es
}

// concat chains group sequences.
func concat(seqs ...iter.Seq[elemGroup]) iter.Seq[elemGroup] {
	return func(yield func(elemGroup) bool) {
		for _, s := range seqs {
			for g := range s {
				if !yield(g) {
					return
				}
			}
		}
	}
}

// batchLimit is the largest batch the socket can send.
func (b *Backend) batchLimit() int {
	return min(maxBatchBytes, b.sendBuf-4096)
}

// send packs the groups into batches no larger than batchLimit and sends
// each batch as one transaction. It stops at the first error.
func (b *Backend) send(ctx context.Context, what string, groups iter.Seq[elemGroup]) error {
	queued, limit := 0, b.batchLimit()
	for g := range groups {
		n := g.bytes()
		if queued > 0 && queued+n > limit {
			if err := b.flushElems(ctx, what); err != nil {
				return err
			}
			queued = 0
		}
		if err := b.queue(g); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		queued += n
	}
	if queued == 0 {
		return nil
	}
	return b.flushElems(ctx, what)
}

// queue queues the messages of a group; on error it drops the connection
// with whatever was queued on it.
func (b *Backend) queue(g elemGroup) error {
	c, err := b.connection()
	if err != nil {
		return err
	}
	for _, m := range g {
		if err := queueElems(c, m); err != nil {
			b.resetConn()
			return err
		}
	}
	return nil
}

// flushElems sends one batch unless ctx is done.
func (b *Backend) flushElems(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		b.resetConn() // discards the queued messages
		return fmt.Errorf("%s: %w", what, err)
	}
	return b.flush(what)
}

// queueElems queues one element message.
func queueElems(c *nftables.Conn, m elemMsg) error {
	if n := elemsBytes(m.elems); n > maxAttrBytes {
		return fmt.Errorf("set %s: %d bytes of elements in one message", m.set.Name, n)
	}
	if m.del {
		return c.SetDeleteElements(m.set, m.elems)
	}
	return c.SetAddElements(m.set, m.elems)
}
