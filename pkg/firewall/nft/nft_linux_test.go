//go:build linux

package nft

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

const week = 7 * 24 * time.Hour

// twoJails is the jail list most tests use: one with ports, one without.
var twoJails = []firewall.Jail{{Name: "sshd", Ports: []uint16{22, 2222}}, {Name: "all"}}

// setup creates a backend in a fresh namespace and sets it up.
func setup(t *testing.T, jails []firewall.Jail) (*netns, *Backend) {
	t.Helper()
	ns := newNetNS(t)
	b := newBackend(t, ns)
	if err := b.Setup(testCtx(t), jails); err != nil {
		t.Fatal(err)
	}
	return ns, b
}

// setOf returns the current name of a jail's set.
func setOf(t *testing.T, b *Backend, jail string, k setKind) string {
	t.Helper()
	st, ok := b.state[jail]
	if !ok {
		t.Fatalf("no jail %q", jail)
	}
	return st.sets[k].Name
}

// expectSet checks a set holds exactly the given keys with the given
// timeouts, and that each expires within a few seconds of its timeout. A
// few seconds less is accepted for the timeout too: an element loaded later
// for an earlier ban gets the time left.
func expectSet(t *testing.T, ns *netns, set string, want map[string]time.Duration) {
	t.Helper()
	got := ns.listSet(t, "banwatch", set)
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		t.Errorf("set %s holds %v, want %v", set, sortedKeys(got), sortedKeys(want))
		return
	}
	for k, timeout := range want {
		e := got[k]
		secs := int(timeout / time.Second)
		if e.Timeout > secs || e.Timeout < secs-5 {
			t.Errorf("set %s: %s has timeout %ds, want %ds", set, k, e.Timeout, secs)
		}
		if e.Expires > secs || e.Expires < secs-5 {
			t.Errorf("set %s: %s expires in %ds, want within 5s of %ds", set, k, e.Expires, secs)
		}
	}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// timeouts maps keys to one timeout.
func timeouts(d time.Duration, keys ...string) map[string]time.Duration {
	m := make(map[string]time.Duration, len(keys))
	for _, k := range keys {
		m[k] = d
	}
	return m
}

// merged merges maps; later ones win.
func merged(ms ...map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

func TestAddRemove(t *testing.T) {
	for _, tc := range []struct {
		name   string
		native bool
	}{
		{"native-refresh", true},
		{"delete-and-readd", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, b := setup(t, twoJails)
			ctx := testCtx(t)
			if tc.native && !b.nativeRefresh {
				t.Skip("kernel ignores the timeout of a re-added element (before Linux 6.12)")
			}
			b.nativeRefresh = tc.native
			checkOther := otherTable(t, ns)

			v4 := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}
			v6 := []string{"2001:db8::1", "2001:db8::2"}
			all := slices.Concat(v4, v6, []string{"198.51.100.0/24", "2001:db8:1::/64"})
			if err := b.Add(ctx, entries("sshd", week, all...)); err != nil {
				t.Fatal(err)
			}
			if err := b.Add(ctx, entries("all", week, "203.0.113.9")); err != nil {
				t.Fatal(err)
			}
			wantV4, wantV6 := timeouts(week, v4...), timeouts(week, v6...)
			wantN4, wantN6 := timeouts(week, "198.51.100.0/24"), timeouts(week, "2001:db8:1::/64")
			expectSet(t, ns, setOf(t, b, "sshd", kindV4), wantV4)
			expectSet(t, ns, setOf(t, b, "sshd", kindV6), wantV6)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet4), wantN4)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet6), wantN6)
			expectSet(t, ns, setOf(t, b, "all", kindV4), timeouts(week, "203.0.113.9"))

			// Re-adding replaces the timeout, shorter or longer.
			if err := b.Add(ctx, slices.Concat(
				entries("sshd", time.Hour, "192.0.2.1", "2001:db8::1", "198.51.100.0/24"),
				entries("sshd", 30*24*time.Hour, "192.0.2.2", "2001:db8:1::/64"),
			)); err != nil {
				t.Fatal(err)
			}
			wantV4 = merged(wantV4, timeouts(time.Hour, "192.0.2.1"), timeouts(30*24*time.Hour, "192.0.2.2"))
			wantV6 = merged(wantV6, timeouts(time.Hour, "2001:db8::1"))
			wantN4 = timeouts(time.Hour, "198.51.100.0/24")
			wantN6 = timeouts(30*24*time.Hour, "2001:db8:1::/64")
			expectSet(t, ns, setOf(t, b, "sshd", kindV4), wantV4)
			expectSet(t, ns, setOf(t, b, "sshd", kindV6), wantV6)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet4), wantN4)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet6), wantN6)

			// Remove removes; absent entries are fine.
			if err := b.Remove(ctx, entries("sshd", 0, "192.0.2.2", "2001:db8::2", "2001:db8:1::/64")); err != nil {
				t.Fatal(err)
			}
			if err := b.Remove(ctx, entries("sshd", 0, "192.0.2.200", "2001:db8::200", "10.1.0.0/16", "2001:db8:ff::/48", "192.0.2.2")); err != nil {
				t.Fatalf("removing absent entries: %v", err)
			}
			delete(wantV4, "192.0.2.2")
			delete(wantV6, "2001:db8::2")
			expectSet(t, ns, setOf(t, b, "sshd", kindV4), wantV4)
			expectSet(t, ns, setOf(t, b, "sshd", kindV6), wantV6)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet4), wantN4)
			expectSet(t, ns, setOf(t, b, "sshd", kindNet6), nil)
			expectSet(t, ns, setOf(t, b, "all", kindV4), timeouts(week, "203.0.113.9"))

			expectRules(t, ns, b)
			if ok, err := b.Check(ctx); !ok || err != nil {
				t.Errorf("Check = %v, %v; want true", ok, err)
			}
			checkOther()
		})
	}
}

// expectRules checks the chain's hook, priority, policy and rules.
func expectRules(t *testing.T, ns *netns, b *Backend) {
	t.Helper()
	out := ns.nft(t, "list", "chain", "inet", "banwatch", "input")
	if !strings.Contains(out, "type filter hook input priority filter - 10; policy accept;") {
		t.Errorf("chain header wrong:\n%s", out)
	}
	rules := ns.chainRules(t, "banwatch", "input")
	if len(rules) != 4*len(b.jails) {
		t.Fatalf("chain has %d rules, want %d:\n%s", len(rules), 4*len(b.jails), out)
	}
	for _, j := range b.jails {
		for k := setKind(0); k < numKinds; k++ {
			name := setOf(t, b, j.Name, k)
			saddr := "ip saddr @" + name + " "
			if k.isV6() {
				saddr = "ip6 saddr @" + name + " "
			}
			want := saddr
			if len(j.Ports) > 0 {
				want = "tcp dport { 22, 2222 } " + saddr
			}
			if !slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, want) && strings.Contains(r, " drop") }) {
				t.Errorf("no rule %q...drop in:\n%s", want, out)
			}
		}
	}
}

func TestAddBulk(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	es := slices.Concat(v4Entries("sshd", 0, 100000, week), v6Entries("sshd", 0, 20000, week))
	start := time.Now()
	if err := b.Add(ctx, es); err != nil {
		t.Fatal(err)
	}
	t.Logf("added %d entries in %v", len(es), time.Since(start))
	if n := setLen(t, ns, "banwatch", setOf(t, b, "sshd", kindV4), 100000); n != 100000 {
		t.Errorf("IPv4 set holds %d elements, want 100000", n)
	}
	if n := setLen(t, ns, "banwatch", setOf(t, b, "sshd", kindV6), 20000); n != 20000 {
		t.Errorf("IPv6 set holds %d elements, want 20000", n)
	}
	if err := b.Remove(ctx, es[:50000]); err != nil {
		t.Fatal(err)
	}
	if n := setLen(t, ns, "banwatch", setOf(t, b, "sshd", kindV4), 50000); n != 50000 {
		t.Errorf("after removing half, IPv4 set holds %d elements, want 50000", n)
	}
}

// setLen counts a set's elements as nft lists them, listing again (up to
// five times, 200 ms apart) while the count is not want: right after a bulk
// add the kernel grows the set's hash table in the background, and a dump
// that runs during the resize can skip elements (a run here listed 99,205
// of 100,000 once). An element truly missing is missing from every
// listing.
func setLen(t *testing.T, ns *netns, table, set string, want int) int {
	t.Helper()
	n := 0
	for i := range 5 {
		if n = len(ns.listSet(t, table, set)); n == want {
			if i > 0 {
				t.Logf("set %s: listing %d held all %d elements", set, i+1, want)
			}
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
	return n
}

// expectExact checks the backend's sets hold exactly the entries (single
// addresses and non-nested prefixes), with their timeouts.
func expectExact(t *testing.T, ns *netns, b *Backend, want []firewall.Entry) {
	t.Helper()
	byJail := map[string]*[numKinds]map[string]time.Duration{}
	for _, st := range b.state {
		var sets [numKinds]map[string]time.Duration
		for k := range sets {
			sets[k] = map[string]time.Duration{}
		}
		byJail[st.jail.Name] = &sets
	}
	for _, e := range want {
		key := e.Prefix.String()
		if e.Prefix.IsSingleIP() {
			key = e.Prefix.Addr().String()
		}
		var left time.Duration
		if !e.Expires.IsZero() {
			left = time.Until(e.Expires).Round(time.Second)
		}
		byJail[e.Jail][kindOf(e.Prefix)][key] = left
	}
	for jail, sets := range byJail {
		for k, m := range sets {
			expectSet(t, ns, setOf(t, b, jail, setKind(k)), m)
		}
	}
	names := ns.setNames(t, "banwatch")
	for _, st := range b.state {
		for _, s := range st.sets {
			delete(names, s.Name)
		}
	}
	if len(names) > 0 {
		t.Errorf("stray sets in table: %v", sortedKeys(names))
	}
}

// expectCheck checks the result of Check.
func expectCheck(t *testing.T, b *Backend, want bool, when string) {
	t.Helper()
	ok, err := b.Check(testCtx(t))
	if err != nil || ok != want {
		t.Errorf("Check %s = %v, %v; want %v", when, ok, err, want)
	}
}

func TestReconcile(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	checkOther := otherTable(t, ns)
	if err := b.Add(ctx, entries("sshd", week, "192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(
		entries("sshd", week, "192.0.2.2", "192.0.2.3", "2001:db8::2", "2001:db8:1::/64"),
		entries("all", time.Hour, "203.0.113.9", "203.0.113.0/28"),
	)
	reconcile := func(when string) {
		t.Helper()
		if err := b.Reconcile(ctx, want); err != nil {
			t.Fatalf("Reconcile %s: %v", when, err)
		}
		expectExact(t, ns, b, want)
		expectRules(t, ns, b)
		expectCheck(t, b, true, "after Reconcile "+when)
	}
	reconcile("with stale entries")
	checkOther()

	ns.nft(t, "flush", "ruleset")
	expectCheck(t, b, false, "after nft flush ruleset")
	reconcile("after nft flush ruleset")
	checkOther = otherTable(t, ns)

	ns.nft(t, "delete", "table", "inet", "banwatch")
	expectCheck(t, b, false, "after nft delete table")
	reconcile("after nft delete table")

	ns.nft(t, "delete", "element", "inet", "banwatch", setOf(t, b, "sshd", kindV4), "{ 192.0.2.3 }")
	ns.nft(t, "delete", "element", "inet", "banwatch", setOf(t, b, "all", kindNet4), "{ 203.0.113.0/28 }")
	reconcile("after nft delete element")

	ns.nft(t, "delete", "rule", "inet", "banwatch", "input", "handle", firstRuleHandle(t, ns))
	expectCheck(t, b, false, "after nft delete rule")
	reconcile("after nft delete rule")

	ns.nft(t, "add", "table", "inet", "banwatch", "{ flags dormant; }")
	expectCheck(t, b, false, "after making the table dormant")
	reconcile("after making the table dormant")

	want = nil
	reconcile("to nothing")
	checkOther()
}

// firstRuleHandle returns the handle of the first rule of our chain.
func firstRuleHandle(t *testing.T, ns *netns) string {
	t.Helper()
	out := ns.nft(t, "-a", "list", "chain", "inet", "banwatch", "input")
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "# handle "); i >= 0 && strings.Contains(line, " drop") {
			return strings.TrimSpace(line[i+len("# handle "):])
		}
	}
	t.Fatalf("no rule handle in:\n%s", out)
	return ""
}

func TestSetupChangesJails(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	checkOther := otherTable(t, ns)
	if err := b.Add(ctx, slices.Concat(
		entries("sshd", week, "192.0.2.1", "2001:db8::1", "198.51.100.0/24"),
		entries("all", week, "203.0.113.9"),
	)); err != nil {
		t.Fatal(err)
	}
	oldAll := b.state["all"].sets
	jails := []firewall.Jail{{Name: "sshd", Ports: []uint16{22, 2222}}, {Name: "web-1", Ports: []uint16{80, 443}}}
	if err := b.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	names := ns.setNames(t, "banwatch")
	for _, s := range oldAll {
		if names[s.Name] {
			t.Errorf("set %s of the removed jail is still there", s.Name)
		}
	}
	if len(names) != 8 {
		t.Errorf("table has sets %v, want 8", sortedKeys(names))
	}
	expectSet(t, ns, setOf(t, b, "sshd", kindV4), timeouts(week, "192.0.2.1"))
	expectSet(t, ns, setOf(t, b, "sshd", kindV6), timeouts(week, "2001:db8::1"))
	expectSet(t, ns, setOf(t, b, "sshd", kindNet4), timeouts(week, "198.51.100.0/24"))
	expectSet(t, ns, setOf(t, b, "web-1", kindV4), nil)
	out := ns.nft(t, "list", "chain", "inet", "banwatch", "input")
	if strings.Contains(out, "all_") || !strings.Contains(out, "tcp dport { 80, 443 } ip saddr @web-1_v4_") {
		t.Errorf("rules not rebuilt:\n%s", out)
	}
	if n := len(ns.chainRules(t, "banwatch", "input")); n != 8 {
		t.Errorf("chain has %d rules, want 8", n)
	}
	if err := b.Add(ctx, entries("web-1", time.Hour, "192.0.2.80")); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, setOf(t, b, "web-1", kindV4), timeouts(time.Hour, "192.0.2.80"))
	expectCheck(t, b, true, "after Setup with changed jails")

	// A new backend (daemon restart) adopts the sets, so bans stay in
	// force; Check asks for a Reconcile.
	b2 := newBackend(t, ns)
	if err := b2.Setup(ctx, jails); err != nil {
		t.Fatal(err)
	}
	if got, want := setOf(t, b2, "sshd", kindV4), setOf(t, b, "sshd", kindV4); got != want {
		t.Errorf("restarted backend uses set %s, want adopted %s", got, want)
	}
	expectSet(t, ns, setOf(t, b2, "sshd", kindV4), timeouts(week, "192.0.2.1"))
	expectCheck(t, b2, false, "after adopting sets")
	if err := b2.Reconcile(ctx, entries("sshd", week, "192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	expectCheck(t, b2, true, "after Reconcile of adopted sets")
	checkOther()
}

func TestOverlappingPrefixes(t *testing.T) {
	ns, b := setup(t, twoJails)
	ctx := testCtx(t)
	set := func() string { return setOf(t, b, "all", kindNet4) }
	if err := b.Add(ctx, entries("all", time.Hour, "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	// A nested prefix that outlives its parent is cut out of it.
	if err := b.Add(ctx, entries("all", week, "10.0.1.0/24")); err != nil {
		t.Fatal(err)
	}
	rest := timeouts(time.Hour, "10.0.0.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.8.0/21",
		"10.0.16.0/20", "10.0.32.0/19", "10.0.64.0/18", "10.0.128.0/17")
	expectSet(t, ns, set(), merged(rest, timeouts(week, "10.0.1.0/24")))
	// One that does not is covered by the parent.
	if err := b.Add(ctx, entries("all", time.Minute, "10.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, set(), merged(rest, timeouts(week, "10.0.1.0/24")))
	// Removing the parent uncovers it.
	if err := b.Remove(ctx, entries("all", 0, "10.0.0.0/16")); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, set(), merged(timeouts(week, "10.0.1.0/24"), timeouts(time.Minute, "10.0.2.0/24")))
	// A parent added over children replaces those it outlives.
	if err := b.Add(ctx, entries("all", 30*24*time.Hour, "10.0.0.0/22")); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, set(), timeouts(30*24*time.Hour, "10.0.0.0/22"))
	// Reconcile takes overlapping entries too.
	want := entries("all", time.Hour, "10.0.0.0/16", "10.0.0.0/8")
	if err := b.Reconcile(ctx, want); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, set(), timeouts(time.Hour, "10.0.0.0/8"))
	expectCheck(t, b, true, "after overlapping prefixes")
}

func TestAddErrors(t *testing.T) {
	ns := newNetNS(t)
	b := newBackend(t, ns)
	ctx := testCtx(t)
	if err := b.Add(ctx, entries("sshd", week, "192.0.2.1")); err == nil {
		t.Error("Add before Setup succeeded")
	}
	if err := b.Setup(ctx, []firewall.Jail{{Name: "Bad Name"}}); err == nil {
		t.Error("Setup with an invalid jail name succeeded")
	}
	if err := b.Setup(ctx, twoJails); err != nil {
		t.Fatal(err)
	}
	err := b.Add(ctx, entries("nosuch", week, "192.0.2.1"))
	if err == nil || !strings.HasPrefix(err.Error(), "nft: ") {
		t.Errorf("Add to an unknown jail: err = %v, want an nft: error", err)
	}
	// Reconcile skips entries of unknown jails.
	if err := b.Reconcile(ctx, slices.Concat(entries("nosuch", week, "192.0.2.1"), entries("sshd", week, "192.0.2.2"))); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, setOf(t, b, "sshd", kindV4), timeouts(week, "192.0.2.2"))
	// An IPv4-mapped IPv6 address is banned as IPv4.
	if err := b.Add(ctx, entries("sshd", week, "::ffff:192.0.2.7")); err != nil {
		t.Fatal(err)
	}
	expectSet(t, ns, setOf(t, b, "sshd", kindV4), timeouts(week, "192.0.2.2", "192.0.2.7"))
}
