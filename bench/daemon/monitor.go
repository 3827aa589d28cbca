package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// table is the nftables table banwatchd owns.
const table = "banwatch"

// monitor follows nftables notifications in a namespace: it remembers, per
// set of the banwatch table, each element added and when the notification
// arrived. It reads the raw netlink messages itself (as nftables.Monitor
// does) so that it can ask for a large receive buffer, notice lost
// notifications (ENOBUFS) and keep going, and take a million elements
// without building an object for each.
type monitor struct {
	ns   string
	conn *netlink.Conn

	mu      sync.Mutex
	sets    map[string]*setSeen // by set name
	lost    int                 // receive buffer overflows
	waiters map[netip.Addr]chan time.Time
	changed chan struct{} // signalled (never blocking) after each receive
	err     error         // why the receive loop ended
	done    chan struct{}
}

// setSeen is what the monitor saw of one set.
type setSeen struct {
	added map[netip.Addr]struct{}
	last  time.Time // when the last new element arrived
}

// openMonitor subscribes to the nftables notification group in namespace ns.
func openMonitor(ns string) (*monitor, error) {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	defer f.Close()
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("monitor: netlink: %w", err)
	}
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			// 256 MiB: a million notifications fit; the kernel charges
			// memory only as it is used.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 256<<20)
			}
		})
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		conn.Close()
		return nil, fmt.Errorf("monitor: join nftables group: %w", err)
	}
	m := &monitor{ns: ns, conn: conn, sets: map[string]*setSeen{}, waiters: map[netip.Addr]chan time.Time{},
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	go m.loop()
	return m, nil
}

func (m *monitor) close() {
	m.conn.Close()
	<-m.done
}

func (m *monitor) loop() {
	defer close(m.done)
	for {
		msgs, err := m.conn.Receive()
		at := time.Now()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				m.mu.Lock()
				m.lost++
				m.mu.Unlock()
				continue
			}
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			return
		}
		m.mu.Lock()
		for _, msg := range msgs {
			m.handle(msg, at)
		}
		m.mu.Unlock()
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
}

// handle takes one notification; m.mu is held.
func (m *monitor) handle(msg netlink.Message, at time.Time) {
	t := msg.Header.Type
	if int(t>>8) != unix.NFNL_SUBSYS_NFTABLES || len(msg.Data) < 4 || msg.Data[0] != unix.NFPROTO_INET {
		return
	}
	typ := int(t & 0xff)
	switch typ {
	case unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET:
		tbl, name := names(msg.Data[4:], unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME)
		if tbl == table {
			delete(m.sets, name) // a new set starts empty
		}
	case unix.NFT_MSG_NEWSETELEM:
		ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
		if err != nil {
			return
		}
		var tbl, set string
		var elems []byte
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_ELEM_LIST_TABLE:
				tbl = ad.String()
			case unix.NFTA_SET_ELEM_LIST_SET:
				set = ad.String()
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				elems = ad.Bytes()
			}
		}
		if tbl != table || elems == nil {
			return
		}
		s := m.sets[set]
		if s == nil {
			s = &setSeen{added: map[netip.Addr]struct{}{}}
			m.sets[set] = s
		}
		forKeys(elems, func(key []byte) {
			a, ok := netip.AddrFromSlice(key)
			if !ok {
				return
			}
			if _, dup := s.added[a]; dup {
				return
			}
			s.added[a] = struct{}{}
			s.last = at
			if w, ok := m.waiters[a]; ok {
				w <- at
				delete(m.waiters, a)
			}
		})
	}
}

// forKeys calls fn with the key of each element in a NFTA_SET_ELEM_LIST_ELEMENTS
// attribute.
func forKeys(elems []byte, fn func(key []byte)) {
	ad, err := netlink.NewAttributeDecoder(elems)
	if err != nil {
		return
	}
	for ad.Next() {
		if ad.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		ad.Nested(func(el *netlink.AttributeDecoder) error {
			for el.Next() {
				if el.Type() == unix.NFTA_SET_ELEM_KEY {
					el.Nested(func(k *netlink.AttributeDecoder) error {
						for k.Next() {
							if k.Type() == unix.NFTA_DATA_VALUE {
								fn(k.Bytes())
							}
						}
						return nil
					})
				}
			}
			return nil
		})
	}
}

// names returns two string attributes of a notification.
func names(attrs []byte, a, b uint16) (string, string) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return "", ""
	}
	var x, y string
	for ad.Next() {
		switch ad.Type() {
		case a:
			x = ad.String()
		case b:
			y = ad.String()
		}
	}
	return x, y
}

// isSet reports whether name is the set of kind ("v4", "v6") of jail.
func isSet(name, jail, kind string) bool {
	p := jail + "_" + kind
	return name == p || strings.HasPrefix(name, p+"_")
}

// count returns the most elements seen added to one set of kind of jail
// (there is one, unless a rebuild swapped sets), when the last of them
// arrived, and how many receive buffer overflows lost notifications.
func (m *monitor) count(jail, kind string) (n int, last time.Time, lost int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.sets {
		if isSet(name, jail, kind) && len(s.added) >= n {
			n, last = len(s.added), s.last
		}
	}
	return n, last, m.lost
}

// expect returns a channel that gets the arrival time of the element a,
// when it is added to any set of the table from now on.
func (m *monitor) expect(a netip.Addr) <-chan time.Time {
	ch := make(chan time.Time, 1)
	m.mu.Lock()
	m.waiters[a] = ch
	m.mu.Unlock()
	return ch
}

// forget drops a waiter that timed out.
func (m *monitor) forget(a netip.Addr) {
	m.mu.Lock()
	delete(m.waiters, a)
	m.mu.Unlock()
}

// failed returns why the monitor stopped, if it did.
func (m *monitor) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// kernelHas asks the kernel, one get-element request each, which of addrs
// the set of kind of jail holds, and returns how many. It is the check of
// what the notifications counted: listing a set of a million elements
// costs the kernel time quadratic in its size (each dump call walks the
// hash table from its start), minutes here, while a get is one look-up.
func kernelHas(ns, jail, kind string, addrs []netip.Addr) (int, error) {
	p, err := openProbe(ns, jail, kind)
	if err != nil {
		return 0, err
	}
	defer p.close()
	return p.has(addrs)
}

// A setProbe asks one set of the kernel for elements over a netlink socket
// it keeps, so that a benchmark that asks every few milliseconds (the
// install's poll) costs the machine a look-up each time, not a set
// listing and two new sockets.
type setProbe struct {
	conn *netlink.Conn
	set  string
}

// openProbe finds the set of kind of jail in namespace ns and opens a
// socket to ask it.
func openProbe(ns, jail, kind string) (*setProbe, error) {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	sets, err := c.GetSets(&nftables.Table{Family: nftables.TableFamilyINet, Name: table})
	if err != nil {
		return nil, fmt.Errorf("nftables: list sets: %w", err)
	}
	var set string
	for _, s := range sets {
		if isSet(s.Name, jail, kind) {
			set = s.Name
		}
	}
	if set == "" {
		return nil, fmt.Errorf("nftables: no set %s_%s in table inet %s", jail, kind, table)
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &setProbe{conn: conn, set: set}, nil
}

func (p *setProbe) close() { _ = p.conn.Close() }

// has asks, one get-element request each, which of addrs the set holds,
// and returns how many.
func (p *setProbe) has(addrs []netip.Addr) (int, error) {
	conn, set := p.conn, p.set
	n := 0
	for _, a := range addrs {
		key := a.AsSlice()
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
		ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
		ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
					ae.Bytes(unix.NFTA_DATA_VALUE, key)
					return nil
				})
				return nil
			})
			return nil
		})
		attrs, err := ae.Encode()
		if err != nil {
			return 0, err
		}
		msg := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
				Flags: netlink.Request},
			Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
		}
		// Without an acknowledgement asked for, the kernel answers with the
		// element or an error, in one message (whose sequence number some
		// kernels leave 0, which conn.Execute would refuse).
		if _, err := conn.Send(msg); err != nil {
			return 0, fmt.Errorf("nftables: get element: %w", err)
		}
		reply, err := conn.Receive()
		switch {
		case err == nil:
			found := false
			for _, r := range reply {
				if int(r.Header.Type&0xff) == unix.NFT_MSG_NEWSETELEM && len(r.Data) > 4 {
					forKeys(elemsOf(r.Data[4:]), func(k []byte) { found = found || string(k) == string(key) })
				}
			}
			if found {
				n++
			}
		case errors.Is(err, unix.ENOENT):
		default:
			return 0, fmt.Errorf("nftables: get element %s from %s: %w", a, set, err)
		}
	}
	return n, nil
}

// elemsOf returns the NFTA_SET_ELEM_LIST_ELEMENTS attribute of a set
// element message.
func elemsOf(attrs []byte) []byte {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return ad.Bytes()
		}
	}
	return nil
}

// sample returns up to k of the n addresses addr(0..n-1), evenly spread,
// the last always among them.
func sample(n, k int, addr func(int) netip.Addr) []netip.Addr {
	k = min(k, n)
	out := make([]netip.Addr, 0, k)
	for j := 1; j <= k; j++ {
		out = append(out, addr(j*n/k-1))
	}
	return out
}
