//go:build linux

package nft

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"golang.org/x/sys/unix"
)

// inNetNS runs fn on a thread switched into ns. The thread is not switched
// back: it ends with the goroutine, so no other code ever runs in ns by
// accident. Sockets created by fn stay in ns.
func inNetNS(t *testing.T, ns *netns, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(ns.fd(), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// listen starts a TCP server on port 25 of all addresses in ns that accepts
// and closes connections.
func listen(t *testing.T, ns *netns) {
	t.Helper()
	var ln net.Listener
	var err error
	inNetNS(t, ns, func() { ln, err = net.Listen("tcp", ":25") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

// dial connects from local (an address in ns) to remote port 25 with a one
// second timeout.
func dial(t *testing.T, ns *netns, local, remote string) error {
	t.Helper()
	var err error
	inNetNS(t, ns, func() {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		var c net.Conn
		c, err = d.Dial("tcp", net.JoinHostPort(remote, "25"))
		if err == nil {
			_ = c.Close()
		}
	})
	return err
}

var vethSeq int

// vethPair joins server and client with a veth pair and addresses:
// 10.99.0.1 and fd00:99::1 on the server, .2/.3 and ::2/::3 on the client.
func vethPair(t *testing.T, srv, cli *netns) {
	t.Helper()
	vethSeq++
	a, b := fmt.Sprintf("bw%da", vethSeq), fmt.Sprintf("bw%db", vethSeq)
	run(t, "ip", "link", "add", a, "netns", srv.name, "type", "veth", "peer", "name", b, "netns", cli.name)
	srv.ip(t, "addr", "add", "10.99.0.1/24", "dev", a)
	srv.ip(t, "addr", "add", "fd00:99::1/64", "dev", a, "nodad")
	srv.ip(t, "link", "set", a, "up")
	for _, addr := range []string{"10.99.0.2/24", "10.99.0.3/24"} {
		cli.ip(t, "addr", "add", addr, "dev", b)
	}
	for _, addr := range []string{"fd00:99::2/64", "fd00:99::3/64"} {
		cli.ip(t, "addr", "add", addr, "dev", b, "nodad")
	}
	cli.ip(t, "link", "set", b, "up")
}

func TestPackets(t *testing.T) {
	srv, cli := newNetNS(t), newNetNS(t)
	vethPair(t, srv, cli)
	listen(t, srv)
	b := newBackend(t, srv)
	ctx := testCtx(t)
	if err := b.Setup(ctx, []firewall.Jail{{Name: "smtp", Ports: []uint16{25}}, {Name: "web", Ports: []uint16{80, 443}}}); err != nil {
		t.Fatal(err)
	}
	expect := func(step, local, remote string, open bool) {
		t.Helper()
		err := dial(t, cli, local, remote)
		switch {
		case open && err != nil:
			t.Errorf("%s: connect %s -> %s failed: %v", step, local, remote, err)
		case !open && err == nil:
			t.Errorf("%s: connect %s -> %s succeeded, want it dropped", step, local, remote)
		}
	}
	for _, fam := range []struct {
		server, banned, other, net string
	}{
		{"10.99.0.1", "10.99.0.2", "10.99.0.3", "10.99.0.2/31"},
		{"fd00:99::1", "fd00:99::2", "fd00:99::3", "fd00:99::2/127"},
	} {
		expect("before any ban", fam.banned, fam.server, true)
		ban := entries("smtp", time.Hour, fam.banned)
		if err := b.Add(ctx, ban); err != nil {
			t.Fatal(err)
		}
		expect("banned", fam.banned, fam.server, false)
		expect("banned other address", fam.other, fam.server, true)
		if err := b.Remove(ctx, ban); err != nil {
			t.Fatal(err)
		}
		expect("after Remove", fam.banned, fam.server, true)

		other := entries("web", time.Hour, fam.banned)
		if err := b.Add(ctx, other); err != nil {
			t.Fatal(err)
		}
		expect("banned on other ports", fam.banned, fam.server, true)
		if err := b.Remove(ctx, other); err != nil {
			t.Fatal(err)
		}

		wide := entries("smtp", time.Hour, fam.net)
		if err := b.Add(ctx, wide); err != nil {
			t.Fatal(err)
		}
		expect("prefix banned", fam.banned, fam.server, false)
		expect("prefix banned", fam.other, fam.server, false)
		if err := b.Reconcile(ctx, nil); err != nil {
			t.Fatal(err)
		}
		expect("after Reconcile to nothing", fam.other, fam.server, true)
	}
	// An element with a short timeout stops dropping when it expires.
	if err := b.Add(ctx, entries("smtp", 2*time.Second, "10.99.0.2")); err != nil {
		t.Fatal(err)
	}
	expect("banned for 2s", "10.99.0.2", "10.99.0.1", false)
	time.Sleep(2 * time.Second)
	expect("after the ban expired", "10.99.0.2", "10.99.0.1", true)
}
