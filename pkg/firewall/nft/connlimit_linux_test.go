//go:build linux

package nft

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"golang.org/x/sys/unix"
)

// flood opens n TCP connections from local (an address in ns) to remote
// port 25 at once: n non-blocking connects in a row on one thread, so the
// SYNs leave in order within a millisecond or so. After wait it reports
// which connections were established, and closes them all.
func flood(t *testing.T, ns *netns, local, remote string, n int, wait time.Duration) []bool {
	t.Helper()
	la, ra := netip.MustParseAddr(local), netip.MustParseAddr(remote)
	sockaddr := func(a netip.Addr, port int) unix.Sockaddr {
		if a.Is4() {
			return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
		}
		return &unix.SockaddrInet6{Addr: a.As16(), Port: port}
	}
	domain := unix.AF_INET
	if la.Is6() {
		domain = unix.AF_INET6
	}
	ok := make([]bool, n)
	var ferr error
	inNetNS(t, ns, func() {
		fds := make([]unix.PollFd, 0, n)
		defer func() {
			for _, p := range fds {
				_ = unix.Close(int(p.Fd))
			}
		}()
		for range n {
			fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				ferr = err
				return
			}
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT})
			if err := unix.Bind(fd, sockaddr(la, 0)); err != nil {
				ferr = err
				return
			}
			if err := unix.Connect(fd, sockaddr(ra, 25)); err != nil && err != unix.EINPROGRESS {
				ferr = err
				return
			}
		}
		time.Sleep(wait)
		if _, err := unix.Poll(fds, 0); err != nil {
			ferr = err
			return
		}
		for i, p := range fds {
			if p.Revents&unix.POLLOUT == 0 {
				continue
			}
			soErr, err := unix.GetsockoptInt(int(p.Fd), unix.SOL_SOCKET, unix.SO_ERROR)
			ok[i] = err == nil && soErr == 0
		}
	})
	if ferr != nil {
		t.Fatalf("flood from %s: %v", local, ferr)
	}
	return ok
}

// countTrue counts the true values.
func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// expectDial checks whether a connection from local to remote port 25 gets
// through.
func expectDial(t *testing.T, ns *netns, local, remote string, open bool, step string) {
	t.Helper()
	err := dial(t, ns, local, remote)
	switch {
	case open && err != nil:
		t.Errorf("%s: connect %s -> %s failed: %v", step, local, remote, err)
	case !open && err == nil:
		t.Errorf("%s: connect %s -> %s succeeded, want it dropped", step, local, remote)
	}
}

// floodsOf returns the flood entries of a jail by address, with their
// time left.
func floodsOf(t *testing.T, b *Backend, jail string) map[string]time.Duration {
	t.Helper()
	es, err := b.Floods(testCtx(t))
	if err != nil {
		t.Fatalf("Floods: %v", err)
	}
	out := map[string]time.Duration{}
	for _, e := range es {
		if !e.Prefix.IsSingleIP() {
			t.Errorf("Floods returned prefix %v, want single addresses", e.Prefix)
		}
		if e.Jail == jail {
			out[e.Prefix.Addr().String()] = time.Until(e.Expires)
		}
	}
	return out
}

// nftRuleset is `nft -j list ruleset` with the parts the tests look at.
type nftRuleset struct {
	Nftables []struct {
		Set *struct {
			Name  string   `json:"name"`
			Table string   `json:"table"`
			Type  string   `json:"type"`
			Flags []string `json:"flags"`
			Size  int      `json:"size"`
		} `json:"set"`
		Rule *struct {
			Table string            `json:"table"`
			Expr  []json.RawMessage `json:"expr"`
		} `json:"rule"`
	} `json:"nftables"`
}

// listJSON lists the ruleset of ns as JSON.
func listJSON(t *testing.T, ns *netns) nftRuleset {
	t.Helper()
	out := ns.nft(t, "-j", "list", "ruleset")
	var doc nftRuleset
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse nft output: %v\n%s", err, out)
	}
	return doc
}

func TestConnLimitPackets(t *testing.T) {
	srv, cli := newNetNS(t), newNetNS(t)
	vethPair(t, srv, cli)
	listen(t, srv)
	b := newBackend(t, srv)
	ctx := testCtx(t)
	const burst = 5
	jails := []firewall.Jail{
		{Name: "smtp", Ports: []uint16{25}, ConnLimit: &firewall.ConnLimit{Rate: 10, Per: time.Minute, Burst: burst}},
		{Name: "all"},
	}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b, true, "after Setup with a connection limit")
	w := startWatch(t, b)
	m, err := b.openMonitor()
	if err != nil {
		t.Fatal(err)
	}
	defer b.closeMonitor(m)

	for _, fam := range []struct{ server, flooder, other string }{
		{"10.99.0.1", "10.99.0.2", "10.99.0.3"},
		{"fd00:99::1", "fd00:99::2", "fd00:99::3"},
	} {
		start := time.Now()
		got := flood(t, cli, fam.flooder, fam.server, 50, 300*time.Millisecond)
		n := countTrue(got)
		t.Logf("%s: %d of 50 connections opened in %v got through: %v", fam.flooder, n, time.Since(start).Round(time.Millisecond), got)
		if n != burst || !slices.Equal(got[:burst], slices.Repeat([]bool{true}, burst)) {
			t.Errorf("%s: %d of 50 connections got through (%v), want exactly the first %d", fam.flooder, n, got, burst)
		}
		expectDial(t, cli, fam.flooder, fam.server, false, "flooder right after its flood")
		expectDial(t, cli, fam.other, fam.server, true, "another client during the flood")
	}

	// The meters hold the flooders, with their limits.
	for set, addr := range map[string]string{"smtp_meter4": "10.99.0.2", "smtp_meter6": "fd00:99::2"} {
		if els := srv.listSet(t, "banwatch", set); els[addr].Timeout != 60 {
			t.Errorf("meter %s holds %v, want %s with timeout 60s", set, els, addr)
		}
	}
	out := srv.nft(t, "list", "chain", "inet", "banwatch", "input")
	t.Logf("chain:\n%s", out)
	for _, want := range []string{
		"tcp dport 25 ct state new update @smtp_meter4 { ip saddr timeout 1m limit rate over 10/minute } counter packets ",
		"tcp dport 25 ct state new update @smtp_meter6 { ip6 saddr timeout 1m limit rate over 10/minute } counter packets ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chain lacks %q", want)
		}
	}
	expectCheck(t, b, true, "after the floods")

	// Packets updating the meters cause no notification at all.
	if err := m.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if msgs, err := m.conn.Receive(); err == nil {
		t.Errorf("monitor received %d notifications caused by packets", len(msgs))
	}
	w.expectNone(t, "meter updates by packets", 200*time.Millisecond)
}

func TestConnLimitBan(t *testing.T) {
	srv, cli := newNetNS(t), newNetNS(t)
	vethPair(t, srv, cli)
	listen(t, srv)
	b := newBackend(t, srv)
	ctx := testCtx(t)
	const server, flooder, other = "10.99.0.1", "10.99.0.2", "10.99.0.3"
	limit := firewall.ConnLimit{Rate: 60, Per: time.Minute, Burst: 3}
	jails := func(l firewall.ConnLimit) []firewall.Jail {
		return []firewall.Jail{{Name: "smtp", Ports: []uint16{25}, ConnLimit: &l}}
	}
	if err := b.Setup(ctx, jails(limit)); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(ctx, entries("smtp", time.Hour, "192.0.2.200")); err != nil {
		t.Fatal(err)
	}
	// Without Ban, a flooder gets new tokens as the bucket refills (one a
	// second at 60/minute).
	if n := countTrue(flood(t, cli, flooder, server, 10, 300*time.Millisecond)); n != 3 {
		t.Errorf("without ban: %d of 10 connections got through, want 3", n)
	}
	time.Sleep(2100 * time.Millisecond)
	expectDial(t, cli, flooder, server, true, "without ban, 2s after the flood")

	// With Ban (changed by a second Setup), it is banned for BanTimeout.
	limit.Ban, limit.BanTimeout = true, 30*time.Second
	if err := b.Setup(ctx, jails(limit)); err != nil {
		t.Fatal(err)
	}
	expectSet(t, srv, setOf(t, b, "smtp", kindV4), timeouts(time.Hour, "192.0.2.200"))
	expectCheck(t, b, true, "after Setup adding Ban")
	if got := floodsOf(t, b, "smtp"); len(got) != 0 {
		t.Errorf("Floods before any flood = %v, want none", got)
	}
	if n := countTrue(flood(t, cli, flooder, server, 10, 300*time.Millisecond)); n > 2 {
		t.Errorf("with ban: %d of 10 connections got through, want at most the 2 refilled", n)
	}
	if n := countTrue(flood(t, cli, "fd00:99::2", "fd00:99::1", 10, 300*time.Millisecond)); n != 3 {
		t.Errorf("with ban, IPv6: %d of 10 connections got through, want 3", n)
	}
	got := floodsOf(t, b, "smtp")
	t.Logf("Floods: %v", got)
	if len(got) != 2 {
		t.Errorf("Floods = %v, want %s and fd00:99::2", got, flooder)
	}
	for _, a := range []string{flooder, "fd00:99::2"} {
		if d, ok := got[a]; !ok || d > 30*time.Second || d < 28*time.Second {
			t.Errorf("Floods: %s has %v left (present %v), want about 30s", a, d, ok)
		}
	}
	time.Sleep(2100 * time.Millisecond)
	expectDial(t, cli, flooder, server, false, "with ban, 2s after the flood")
	expectDial(t, cli, "fd00:99::2", "fd00:99::1", false, "with ban, IPv6, 2s after the flood")
	expectDial(t, cli, other, server, true, "another client")
	expectDial(t, cli, "fd00:99::3", "fd00:99::1", true, "another client, IPv6")

	// Reconcile keeps the flood sets.
	if err := b.Reconcile(ctx, entries("smtp", time.Hour, "192.0.2.200")); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b, true, "after Reconcile")
	if got := floodsOf(t, b, "smtp"); len(got) != 2 {
		t.Errorf("Floods after Reconcile = %v, want both flooders", got)
	}
	expectDial(t, cli, flooder, server, false, "with ban, after Reconcile")

	// Remove lifts the kernel's ban; the meter has refilled meanwhile.
	if err := b.Remove(ctx, entries("smtp", 0, flooder)); err != nil {
		t.Fatal(err)
	}
	if got := floodsOf(t, b, "smtp"); len(got) != 1 {
		t.Errorf("Floods after Remove = %v, want only fd00:99::2", got)
	}
	expectDial(t, cli, flooder, server, true, "after Remove")

	// Dropping the limit drops its sets and rules.
	if err := b.Setup(ctx, []firewall.Jail{{Name: "smtp", Ports: []uint16{25}}}); err != nil {
		t.Fatal(err)
	}
	for name := range srv.setNames(t, "banwatch") {
		if !strings.HasPrefix(name, "smtp_v") && !strings.HasPrefix(name, "smtp_net") {
			t.Errorf("set %s left after the limit was dropped", name)
		}
	}
	if rules := srv.chainRules(t, "banwatch", "input"); len(rules) != 4 {
		t.Errorf("chain has rules %q, want the 4 of the ban sets", rules)
	}
	expectCheck(t, b, true, "after Setup dropping the limit")
	if got, err := b.Floods(ctx); err != nil || len(got) != 0 {
		t.Errorf("Floods without limits = %v, %v; want none", got, err)
	}
	expectDial(t, cli, "fd00:99::2", "fd00:99::1", true, "after the limit was dropped")
}

func TestConnLimitSetup(t *testing.T) {
	ns := newNetNS(t)
	// A set of the wrong type where a meter goes is replaced.
	ns.nft(t, "add", "table", "inet", "banwatch")
	ns.nft(t, "add", "set", "inet", "banwatch", "smtp_meter4", "{ type ipv4_addr; }")
	b := newBackend(t, ns)
	ctx := testCtx(t)
	limit := &firewall.ConnLimit{Rate: 10, Per: time.Minute, Burst: 5, Ban: true, BanTimeout: time.Hour}
	jails := []firewall.Jail{
		{Name: "smtp", Ports: []uint16{25, 587}, ConnLimit: limit},
		{Name: "any", ConnLimit: &firewall.ConnLimit{Rate: 100, Per: time.Second}},
		{Name: "plain", Ports: []uint16{22}},
	}
	for i := range 2 { // idempotent
		if err := b.Setup(ctx, jails); err != nil {
			t.Fatalf("Setup %d: %v", i+1, err)
		}
		expectCheck(t, b, true, "after Setup")
	}
	doc := listJSON(t, ns)
	sets := map[string]string{}
	rules := 0
	var dynsets []string
	for _, o := range doc.Nftables {
		if o.Set != nil && o.Set.Table == "banwatch" {
			sets[o.Set.Name] = o.Set.Type
			if strings.Contains(o.Set.Name, "meter") || strings.Contains(o.Set.Name, "flood") {
				if !slices.Contains(o.Set.Flags, "timeout") || o.Set.Size != connSetSize {
					t.Errorf("set %s: flags %v size %d, want timeout and %d", o.Set.Name, o.Set.Flags, o.Set.Size, connSetSize)
				}
			}
		}
		if o.Rule != nil && o.Rule.Table == "banwatch" {
			rules++
			for _, e := range o.Rule.Expr {
				var buf bytes.Buffer
				if err := json.Compact(&buf, e); err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(buf.String(), `{"set":`) {
					dynsets = append(dynsets, buf.String())
				}
			}
		}
	}
	for name, typ := range map[string]string{
		"smtp_meter4": "ipv4_addr", "smtp_meter6": "ipv6_addr", "smtp_flood4": "ipv4_addr", "smtp_flood6": "ipv6_addr",
		"any_meter4": "ipv4_addr", "any_meter6": "ipv6_addr",
	} {
		if sets[name] != typ {
			t.Errorf("set %s has type %q, want %s (sets: %v)", name, sets[name], typ, sets)
		}
	}
	if _, ok := sets["any_flood4"]; ok {
		t.Error("jail without Ban has a flood set")
	}
	if len(sets) != 3*4+6 {
		t.Errorf("table has %d sets, want 18: %v", len(sets), sortedKeys(sets))
	}
	if want := 3*4 + 4 + 2; rules != want {
		t.Errorf("table has %d rules, want %d", rules, want)
	}
	wantDynsets := []string{
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":60}},"set":"@smtp_meter4","stmt":[{"limit":{"rate":10,"burst":5,"per":"minute","inv":true}}]}}`,
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":3600}},"set":"@smtp_flood4"}}`,
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":60}},"set":"@smtp_meter6","stmt":[{"limit":{"rate":10,"burst":5,"per":"minute","inv":true}}]}}`,
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":3600}},"set":"@smtp_flood6"}}`,
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip","field":"saddr"}},"timeout":60}},"set":"@any_meter4","stmt":[{"limit":{"rate":100,"burst":5,"per":"second","inv":true}}]}}`,
		`{"set":{"op":"update","elem":{"elem":{"val":{"payload":{"protocol":"ip6","field":"saddr"}},"timeout":60}},"set":"@any_meter6","stmt":[{"limit":{"rate":100,"burst":5,"per":"second","inv":true}}]}}`,
	}
	if !slices.Equal(dynsets, wantDynsets) {
		t.Errorf("set statements:\n%s\nwant:\n%s", strings.Join(dynsets, "\n"), strings.Join(wantDynsets, "\n"))
	}
	out := ns.nft(t, "list", "chain", "inet", "banwatch", "input")
	t.Logf("chain:\n%s", out)
	for _, want := range []string{
		"tcp dport { 25, 587 } ip saddr @smtp_flood4 counter packets 0 bytes 0 drop",
		"meta l4proto tcp ct state new update @any_meter4 { ip saddr timeout 1m limit rate over 100/second } counter",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("chain lacks %q", want)
		}
	}

	// Setup keeps meters and flood sets, but empties the meters when the
	// limit changes.
	ns.nft(t, "add", "element", "inet", "banwatch", "smtp_meter4", "{ 192.0.2.1 timeout 1m }")
	ns.nft(t, "add", "element", "inet", "banwatch", "smtp_flood4", "{ 192.0.2.2 timeout 1h }")
	if err := b.Add(ctx, entries("smtp", time.Hour, "192.0.2.3")); err != nil {
		t.Fatal(err)
	}
	expectFlood := func(when string) {
		t.Helper()
		if got := floodsOf(t, b, "smtp"); len(got) != 1 || got["192.0.2.2"] < 59*time.Minute || got["192.0.2.2"] > time.Hour {
			t.Errorf("Floods %s = %v, want 192.0.2.2 with about 1h left", when, got)
		}
	}
	expectFlood("after nft add element")
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	if got := ns.listSet(t, "banwatch", "smtp_meter4"); len(got) != 1 {
		t.Errorf("meter after Setup with the same limit holds %v, want 192.0.2.1", got)
	}
	changed := slices.Clone(jails)
	changed[0].ConnLimit = &firewall.ConnLimit{Rate: 20, Per: time.Minute, Burst: 5, Ban: true, BanTimeout: 2 * time.Hour}
	if err := b.Setup(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got := ns.listSet(t, "banwatch", "smtp_meter4"); len(got) != 0 {
		t.Errorf("meter after Setup with a changed limit holds %v, want nothing", got)
	}
	expectFlood("after Setup with a changed limit")
	expectSet(t, ns, setOf(t, b, "smtp", kindV4), timeouts(time.Hour, "192.0.2.3"))
	if out := ns.nft(t, "list", "chain", "inet", "banwatch", "input"); !strings.Contains(out, "limit rate over 20/minute } update @smtp_flood4 { ip saddr timeout 2h }") {
		t.Errorf("rules not updated to the changed limit:\n%s", out)
	}
	expectCheck(t, b, true, "after Setup with a changed limit")
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}

	// Others deleting a meter rule: Check fails, Reconcile restores it.
	handle := ""
	for _, line := range strings.Split(ns.nft(t, "-a", "list", "chain", "inet", "banwatch", "input"), "\n") {
		if i := strings.Index(line, "# handle "); i >= 0 && strings.Contains(line, "@smtp_meter6") {
			handle = strings.TrimSpace(line[i+len("# handle "):])
		}
	}
	ns.nft(t, "delete", "rule", "inet", "banwatch", "input", "handle", handle)
	expectCheck(t, b, false, "after nft delete rule")
	if err := b.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b, true, "after Reconcile")
	ns.nft(t, "flush", "ruleset")
	if err := b.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b, true, "after nft flush ruleset and Reconcile")
	if names := ns.setNames(t, "banwatch"); !names["smtp_flood6"] || !names["any_meter6"] {
		t.Errorf("Reconcile did not recreate the connection-limit sets: %v", sortedKeys(names))
	}

	// A restarted backend adopts; Check asks for a Reconcile as usual.
	b2 := newBackend(t, ns)
	if err := b2.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b2, false, "after adopting")
	if err := b2.Reconcile(ctx, nil); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b2, true, "after Reconcile of adopted sets")
}
