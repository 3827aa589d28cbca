package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/pgtest"
	"github.com/banwatch/banwatch/pkg/cluster"
	"github.com/banwatch/banwatch/pkg/daemon"
)

// clusterNode is a configuration for one cluster node in its own network
// namespace; the nodes reach PostgreSQL through its Unix socket.
func clusterNode(t *testing.T, srv *pgtest.Server, name, extra string) *env {
	t.Helper()
	return newEnv(t, newNetns(t), fmt.Sprintf("\n[cluster]\npostgres = %q\nnode = %q\nbatch = \"50ms\"\n%s", srv.DSN(), name, extra))
}

// twoNodes starts a throwaway PostgreSQL and two nodes on it, mx1 (a)
// and mx2 (b), and waits until both are connected.
func twoNodes(t *testing.T) (srv *pgtest.Server, a, b *env, da, db *daemonProc) {
	t.Helper()
	srv = pgtest.Start(t)
	a, b = clusterNode(t, srv, "mx1", ""), clusterNode(t, srv, "mx2", "")
	da, db = a.start(), b.start()
	waitLogged(t, da, `msg="cluster connected"`, 15*time.Second)
	waitLogged(t, db, `msg="cluster connected"`, 15*time.Second)
	return srv, a, b, da, db
}

// waitFor polls cond every 10 ms until it holds or within has passed; it
// returns how long that took, and fails the test with what() otherwise.
func waitFor(t *testing.T, within time.Duration, cond func() bool, what func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// waitLogged waits until d has logged s.
func waitLogged(t *testing.T, d *daemonProc, s string, within time.Duration) {
	t.Helper()
	waitFor(t, within, func() bool { return strings.Contains(d.log(), s) },
		func() string { return fmt.Sprintf("%q not logged:\n%s", s, tail(d.log(), 30)) })
}

// holdsAll reports whether e's kernel bans every one of addrs.
func holdsAll(e *env, addrs []string) bool {
	els := e.setElements(v4set)
	for _, ip := range addrs {
		if _, ok := els[ip]; !ok {
			return false
		}
	}
	return true
}

// storeCount runs a count query on a node's database.
func storeCount(t *testing.T, e *env, q string) int {
	t.Helper()
	n := 0
	query(t, filepath.Join(e.state, daemon.DBFile), q, func(rows *sql.Rows) error { return rows.Scan(&n) })
	return n
}

// TestCluster runs two nodes on one PostgreSQL: bans and unbans cross
// within a second; PostgreSQL away for 30 s stops nothing locally, and
// afterwards every ban made meanwhile reaches the other node once; a node
// restarted, and a new node, load the cluster's bans.
func TestCluster(t *testing.T) {
	needRoot(t)
	srv, a, b, da, db := twoNodes(t)

	// A ban decided on A, from its log, reaches B's kernel.
	a.appendLines(failures("203.0.113.7", 5)...)
	written := time.Now()
	a.waitElement(v4set, "203.0.113.7", 5*time.Second)
	onA := time.Since(written)
	_, onB := b.waitElement(v4set, "203.0.113.7", 5*time.Second)
	t.Logf("CLUSTER ban: in A's kernel %v after the fifth strike was written, in B's %v later",
		onA.Round(time.Millisecond), onB.Round(time.Millisecond))
	if el := b.setElements(v4set)["203.0.113.7"]; el.Expires < 7*24*time.Hour-time.Minute {
		t.Errorf("on B the ban expires in %v, want A's week", el.Expires)
	}
	// B's banctl shows the node it came from.
	if code, out, errOut := b.banctl("list"); code != 0 || !strings.Contains(out, "mx1") {
		t.Errorf("banctl list on B (%d) does not name mx1:\n%s%s", code, out, errOut)
	}
	// An admin's unban on B lifts it on A too.
	start := time.Now()
	if code, out, errOut := b.banctl("unban", "203.0.113.7"); code != 0 {
		t.Fatalf("banctl unban on B: %d\n%s%s", code, out, errOut)
	}
	b.waitGone(v4set, "203.0.113.7", 5*time.Second)
	a.waitGone(v4set, "203.0.113.7", 5*time.Second)
	t.Logf("CLUSTER unban: gone from A's kernel %v after banctl unban on B returned", time.Since(start).Round(time.Millisecond))
	// A manual ban on B reaches A.
	if code, out, errOut := b.banctl("ban", "198.51.100.77", "--jail", "postfix", "--reason", "seen elsewhere"); code != 0 {
		t.Fatalf("banctl ban on B: %d\n%s%s", code, out, errOut)
	}
	_, took := a.waitElement(v4set, "198.51.100.77", 5*time.Second)
	t.Logf("CLUSTER manual ban: in A's kernel %v after banctl ban on B returned", took.Round(time.Millisecond))
	// banctl history on A reads the cluster's: B's ban, and A's ban that
	// B's admin lifted.
	code, out, errOut := a.banctl("history")
	if code != 0 || !regexp.MustCompile(`198\.51\.100\.77 +postfix +manual ban on mx2: seen elsewhere; active`).MatchString(out) ||
		!regexp.MustCompile(`203\.0\.113\.7 +postfix +jail ban on mx1, 5 strikes: .*; unbanned .* by uid 0 \(root\) on mx2`).MatchString(out) {
		t.Errorf("banctl history on A (%d):\n%s%s", code, out, errOut)
	}
	// The ban reached the cluster as A made it, before A's store had its
	// evidence; the copy A's outbox sends after adds it: banctl show on B
	// has the five log lines.
	waitFor(t, 5*time.Second, func() bool {
		_, out, _ := b.banctl("show", "203.0.113.7")
		return strings.Count(out, "unknown[203.0.113.7]: SASL LOGIN authentication failed") == 5
	}, func() string {
		_, out, errOut := b.banctl("show", "203.0.113.7")
		return "banctl show on B has not the 5 evidence lines:\n" + out + errOut
	})

	// Without share_strikes, strikes stay on their node: 2 on A and 2 on
	// B ban nothing.
	a.appendLines(failures("203.0.113.99", 2)...)
	b.appendLines(failures("203.0.113.99", 2)...)
	time.Sleep(time.Second)
	if _, ok := a.setElements(v4set)["203.0.113.99"]; ok {
		t.Error("without share_strikes, 2 strikes on A and 2 on B banned 203.0.113.99 on A")
	}
	if _, ok := b.setElements(v4set)["203.0.113.99"]; ok {
		t.Error("without share_strikes, 2 strikes on A and 2 on B banned 203.0.113.99 on B")
	}

	// PostgreSQL away for 30 s while A bans 100 addresses.
	srv.Stop(t)
	outage := time.Now()
	var addrs []string
	var lines []string
	for i := range 100 {
		// Each in a /24 of its own: three in one would make a subnet ban.
		ip := fmt.Sprintf("10.1.%d.1", i)
		addrs = append(addrs, ip)
		lines = append(lines, failures(ip, 5)...)
	}
	a.appendLines(lines...)
	waitFor(t, 10*time.Second, func() bool { return holdsAll(a, addrs) }, func() string { return "A's own bans while PostgreSQL is down:\n" + tail(da.log(), 20) })
	t.Logf("A banned the 100 addresses %v after PostgreSQL stopped", time.Since(outage).Round(time.Millisecond))
	time.Sleep(30*time.Second - time.Since(outage))
	srv.Restart(t)
	took = waitFor(t, 30*time.Second, func() bool { return holdsAll(b, addrs) }, func() string { return "B's copies of A's bans after PostgreSQL came back:\n" + tail(db.log(), 20) })
	t.Logf("CLUSTER outage: B had all 100 bans %v after PostgreSQL came back", took.Round(time.Millisecond))
	// Nothing twice: in PostgreSQL, in B's store.
	if got := strings.TrimSpace(srv.Psql(t, "SELECT count(*) FROM banwatch_changes WHERE kind = 'ban' AND node = 'mx1' AND prefix << '10.1.0.0/16'")); got != "100" {
		t.Errorf("PostgreSQL holds %s bans of A's 100", got)
	}
	if n := storeCount(t, b, "SELECT count(*) FROM bans WHERE node = 'mx1' AND substr(addr, 1, 3) = x'040a01'"); n != 100 {
		t.Errorf("B's store holds %d bans of A's 100", n)
	}

	// B killed; A bans meanwhile; B restarted has A's new ban.
	db.kill()
	a.appendLines(failures("203.0.113.50", 5)...)
	a.waitElement(v4set, "203.0.113.50", 5*time.Second)
	waitFor(t, 5*time.Second, func() bool {
		return strings.TrimSpace(srv.Psql(t, "SELECT count(*) FROM banwatch_changes WHERE prefix = '203.0.113.50/32'")) == "1"
	}, func() string { return "A's ban of 203.0.113.50 not in PostgreSQL" })
	db = b.start()
	_, took = b.waitElement(v4set, "203.0.113.50", 10*time.Second)
	t.Logf("CLUSTER restart: B had the ban made while it was down %v after it was ready", took.Round(time.Millisecond))

	// A new node loads the cluster's active bans.
	c := clusterNode(t, srv, "mx3", "")
	dc := c.start()
	waitLogged(t, dc, `msg="cluster's active bans loaded"`, 15*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		_, unbanned := c.setElements(v4set)["203.0.113.7"]
		return holdsAll(c, append(addrs, "203.0.113.50", "198.51.100.77")) && !unbanned
	}, func() string { return "the new node's bans:\n" + tail(dc.log(), 20) })
}

// TestClusterSharedStrikes: with share_strikes, 2 strikes on each of 3
// nodes for one address (max_strikes 5) ban it on all three.
func TestClusterSharedStrikes(t *testing.T) {
	needRoot(t)
	srv := pgtest.Start(t)
	var nodes []*env
	var procs []*daemonProc
	for _, name := range []string{"mx1", "mx2", "mx3"} {
		e := clusterNode(t, srv, name, "share_strikes = true\n")
		d := e.start()
		waitLogged(t, d, `msg="cluster connected"`, 15*time.Second)
		nodes, procs = append(nodes, e), append(procs, d)
	}
	for i, e := range nodes {
		e.appendLines(failures("203.0.113.66", 2)...)
		if i < len(nodes)-1 {
			// Each node's strikes reach the others before the next's.
			time.Sleep(500 * time.Millisecond)
		}
	}
	written := time.Now()
	for i, e := range nodes {
		waitFor(t, 5*time.Second, func() bool { _, ok := e.setElements(v4set)["203.0.113.66"]; return ok },
			func() string {
				return fmt.Sprintf("203.0.113.66 not banned on mx%d:\n%s", i+1, tail(procs[i].log(), 20))
			})
	}
	t.Logf("CLUSTER shared strikes: banned on all 3 nodes %v after the last node's strikes were written", time.Since(written).Round(time.Millisecond))
	// Each node may decide the ban itself (the strikes reach every node,
	// and a node that decides before another's ban arrives keeps its
	// own); each holds one active ban of the address, and the evidence of
	// the ban the last node made names the strikes of the other two.
	bans := strings.TrimSpace(srv.Psql(t, "SELECT string_agg(node, ' ' ORDER BY seq) FROM banwatch_changes WHERE kind = 'ban' AND prefix = '203.0.113.66/32'"))
	for i, e := range nodes {
		if n := storeCount(t, e, "SELECT count(*) FROM bans WHERE addr = x'04cb007142' AND ended = ''"); n != 1 {
			t.Errorf("mx%d's store holds %d active bans of 203.0.113.66, want 1", i+1, n)
		}
	}
	code, out, _ := nodes[2].banctl("show", "203.0.113.66")
	if code != 0 || !strings.Contains(out, "(a strike counted on mx1: auth_failure)") || !strings.Contains(out, "(a strike counted on mx2: auth_failure)") {
		t.Errorf("history on mx3 (%d) does not name the strikes of mx1 and mx2:\n%s", code, out)
	}
	t.Logf("bans made in the cluster, by node: %s; mx3's history:\n%s", bans, out)
}

// TestClusterUnbanThenBan: an admin lifts a ban on A and A bans the
// address again a moment later. The other node must see the two in that
// order: had the new ban, sent as A made it, come first, B would take it
// for the old one (same address, ending within a minute of it) and then
// the unban would leave B without a ban. The outbox's unban is sent
// before the bans offered after it.
func TestClusterUnbanThenBan(t *testing.T) {
	needRoot(t)
	_, a, b, _, _ := twoNodes(t)

	const ip = "203.0.113.44"
	a.appendLines(failures(ip, 5)...)
	b.waitElement(v4set, ip, 5*time.Second)
	time.Sleep(1100 * time.Millisecond) // the new strikes' log time a second later
	if code, out, errOut := a.banctl("unban", ip); code != 0 {
		t.Fatalf("banctl unban on A: %d\n%s%s", code, out, errOut)
	}
	a.appendLines(failures(ip, 5)...)
	a.waitElement(v4set, ip, 5*time.Second)
	// B's history shows both bans of mx1, the first unbanned, the second
	// active; and B's kernel holds the address.
	waitFor(t, 5*time.Second, func() bool {
		_, out, _ := b.banctl("history", ip)
		return strings.Contains(out, "unbanned") && strings.Contains(out, "; active")
	}, func() string {
		_, out, errOut := b.banctl("history", ip)
		return "banctl history on B:\n" + out + errOut
	})
	if _, ok := b.setElements(v4set)[ip]; !ok {
		_, out, _ := b.banctl("list")
		t.Errorf("B's kernel does not hold %s after the unban and the new ban; banctl list on B:\n%s", ip, out)
	}
	if code, out, _ := b.banctl("list", "--ip", ip); code != 0 || !strings.Contains(out, ip) {
		t.Errorf("banctl list on B (%d) has no active ban of %s:\n%s", code, ip, out)
	}
}

// TestClusterPrune: a node prunes the cluster's old changes soon after it
// connects (then hourly): strikes older than its jails remember and than a
// day, bans over before the history kept ([daemon] history, a year here),
// with their evidence, and unbans no ban is left for. A long ban unbanned
// long ago stays ended for a node that starts after the prune.
func TestClusterPrune(t *testing.T) {
	needRoot(t)
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Connect(ctx, cluster.Options{DSN: srv.DSN(), Node: "mx9"}) // makes the schema
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.Psql(t, `
INSERT INTO banwatch_changes (node, source, node_seq, kind, jail, prefix, at, end_at, event, weight, by_whom) VALUES
 ('mx9', 's9', 1, 'strike', 'postfix', '203.0.113.1/32', now() - interval '400 days', NULL, 'auth_failure', 1, ''),
 ('mx9', 's9', 2, 'strike', 'postfix', '203.0.113.2/32', now() - interval '1 hour', NULL, 'auth_failure', 1, ''),
 ('mx9', 's9', 3, 'ban', 'postfix', '192.0.2.1/32', now() - interval '400 days', now() - interval '393 days', '', 0, ''),
 ('mx9', 's9', 4, 'unban', 'postfix', '192.0.2.1/32', now() - interval '399 days', NULL, '', 0, 'uid 0'),
 ('mx9', 's9', 5, 'ban', 'postfix', '192.0.2.4/32', now() - interval '400 days', now() + interval '400 days', '', 0, ''),
 ('mx9', 's9', 6, 'unban', 'postfix', '192.0.2.4/32', now() - interval '399 days', NULL, '', 0, 'uid 0'),
 ('mx9', 's9', 7, 'ban', 'postfix', '192.0.2.5/32', now() - interval '2 days', now() - interval '1 day', '', 0, ''),
 ('mx9', 's9', 8, 'ban', 'postfix', '192.0.2.6/32', now() - interval '1 hour', now() + interval '1 day', '', 0, '');
INSERT INTO banwatch_evidence (node, source, jail, prefix, at, lines)
 SELECT node, source, jail, prefix, at, '["a line"]' FROM banwatch_changes WHERE kind = 'ban';`)

	a := clusterNode(t, srv, "mx1", "")
	da := a.start()
	waitLogged(t, da, `msg="cluster pruned"`, 30*time.Second)
	if !regexp.MustCompile(`msg="cluster pruned".* changes=3\b`).MatchString(da.log()) {
		t.Errorf("the prune's log line does not count 3 changes:\n%s", tail(da.log(), 10))
	}
	want := "strike 203.0.113.2, ban 192.0.2.4, unban 192.0.2.4, ban 192.0.2.5, ban 192.0.2.6"
	if got := strings.TrimSpace(srv.Psql(t, "SELECT string_agg(kind || ' ' || host(prefix), ', ' ORDER BY seq) FROM banwatch_changes")); got != want {
		t.Errorf("the cluster's changes after pruning: %s\nwant %s", got, want)
	}
	if got := strings.TrimSpace(srv.Psql(t, "SELECT string_agg(host(prefix), ', ' ORDER BY prefix) FROM banwatch_evidence")); got != "192.0.2.4, 192.0.2.5, 192.0.2.6" {
		t.Errorf("the cluster's evidence after pruning: %s; want 192.0.2.4, 192.0.2.5, 192.0.2.6", got)
	}
	// A node started now loads the ban in force and not the one unbanned.
	b := clusterNode(t, srv, "mx2", "")
	db := b.start()
	waitLogged(t, db, `msg="cluster connected"`, 15*time.Second)
	b.waitElement(v4set, "192.0.2.6", 5*time.Second)
	for _, e := range []*env{a, b} {
		if _, ok := e.setElements(v4set)["192.0.2.4"]; ok {
			t.Errorf("192.0.2.4, unbanned long ago, is in the kernel of %s", e.state)
		}
	}
}
