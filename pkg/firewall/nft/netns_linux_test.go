//go:build linux

package nft

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

// needRoot skips privileged tests when not root, in -short mode, or when a
// tool they use is missing.
func needRoot(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs root for a network namespace: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root for a network namespace: not running as root")
	}
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("needs root for a network namespace: %s not installed", tool)
		}
	}
}

// netns is a named network namespace made for one test.
type netns struct {
	name string
	file *os.File
}

var nsSeq atomic.Int64

// newNetNS creates a fresh network namespace, removed when the test ends.
func newNetNS(tb testing.TB) *netns {
	tb.Helper()
	needRoot(tb)
	name := fmt.Sprintf("bwtest-%d-%d", os.Getpid(), nsSeq.Add(1))
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close() })
	ns := &netns{name: name, file: f}
	ns.ip(tb, "link", "set", "lo", "up")
	return ns
}

// fd is the namespace's file descriptor, for Options.NetNSFd.
func (ns *netns) fd() int { return int(ns.file.Fd()) }

// run runs a command and fails the test if it fails.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft runs the nft tool inside the namespace.
func (ns *netns) nft(tb testing.TB, args ...string) string {
	tb.Helper()
	return run(tb, "nsenter", append([]string{"--net=/run/netns/" + ns.name, "nft"}, args...)...)
}

// ip runs the ip tool inside the namespace.
func (ns *netns) ip(tb testing.TB, args ...string) string {
	tb.Helper()
	return run(tb, "ip", append([]string{"-n", ns.name}, args...)...)
}

// newBackend makes a backend in ns with a test logger, closed at the end.
func newBackend(tb testing.TB, ns *netns) *Backend {
	tb.Helper()
	b, err := New(testLogger(tb), Options{NetNSFd: ns.fd()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// testLogger logs to the test log (or discards, for benchmarks).
func testLogger(tb testing.TB) *slog.Logger {
	if _, ok := tb.(*testing.B); ok {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testWriter writes log lines to tb.Log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// elem is a set element as `nft -j` lists it.
type elem struct {
	Timeout int // seconds; 0 = none
	Expires int // seconds left
}

// listSet lists a set's elements with the nft tool, keyed by address or
// prefix ("10.0.0.0/24").
func (ns *netns) listSet(tb testing.TB, table, set string) map[string]elem {
	tb.Helper()
	out := ns.nft(tb, "-j", "list", "set", "inet", table, set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tb.Fatalf("parse nft output: %v\n%s", err, out)
	}
	got := map[string]elem{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			k, e := parseElem(tb, raw)
			got[k] = e
		}
	}
	return got
}

// parseElem parses one element of `nft -j` output: a plain value, a prefix
// object, or either wrapped in {"elem": {"val": ..., "timeout": ...}}.
func parseElem(tb testing.TB, raw json.RawMessage) (string, elem) {
	tb.Helper()
	var wrapped struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Timeout int             `json:"timeout"`
			Expires int             `json:"expires"`
		} `json:"elem"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Elem != nil {
		return parseVal(tb, wrapped.Elem.Val), elem{wrapped.Elem.Timeout, wrapped.Elem.Expires}
	}
	return parseVal(tb, raw), elem{}
}

// parseVal parses an element value: "1.2.3.4" or {"prefix": {...}}.
func parseVal(tb testing.TB, raw json.RawMessage) string {
	tb.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var p struct {
		Prefix struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		tb.Fatalf("unknown element %s", raw)
	}
	if len(p.Range) == 2 {
		return p.Range[0] + "-" + p.Range[1]
	}
	return fmt.Sprintf("%s/%d", p.Prefix.Addr, p.Prefix.Len)
}

// setNames lists the names of the named sets in a table.
func (ns *netns) setNames(tb testing.TB, table string) map[string]bool {
	tb.Helper()
	out := ns.nft(tb, "-j", "list", "sets", "inet")
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name  string `json:"name"`
				Table string `json:"table"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tb.Fatalf("parse nft output: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, o := range doc.Nftables {
		if o.Set != nil && o.Set.Table == table {
			names[o.Set.Name] = true
		}
	}
	return names
}

// chainRules returns the rules of a chain as nft prints them, one per line.
func (ns *netns) chainRules(tb testing.TB, table, chain string) []string {
	tb.Helper()
	out := ns.nft(tb, "list", "chain", "inet", table, chain)
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, " drop") || strings.HasSuffix(line, "accept") && !strings.HasPrefix(line, "type ") {
			rules = append(rules, line)
		}
	}
	return rules
}

// mustPrefix parses a prefix or a single address.
func mustPrefix(s string) netip.Prefix {
	if strings.Contains(s, "/") {
		return netip.MustParsePrefix(s)
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

// entries builds entries for one jail with one timeout.
func entries(jail string, timeout time.Duration, prefixes ...string) []firewall.Entry {
	out := make([]firewall.Entry, len(prefixes))
	for i, p := range prefixes {
		out[i] = firewall.Entry{Jail: jail, Prefix: mustPrefix(p), Expires: expiresIn(timeout)}
	}
	return out
}

// otherTable creates a table the backend must never touch and returns a
// function that checks it is unchanged.
func otherTable(tb testing.TB, ns *netns) func() {
	tb.Helper()
	ns.nft(tb, "add", "table", "inet", "other")
	ns.nft(tb, "add", "chain", "inet", "other", "c", "{ type filter hook input priority 0; policy accept; }")
	ns.nft(tb, "add", "set", "inet", "other", "s", "{ type ipv4_addr; }")
	ns.nft(tb, "add", "element", "inet", "other", "s", "{ 203.0.113.7 }")
	ns.nft(tb, "add", "rule", "inet", "other", "c", "ip saddr @s counter accept")
	want := ns.nft(tb, "list", "table", "inet", "other")
	return func() {
		tb.Helper()
		if got := ns.nft(tb, "list", "table", "inet", "other"); got != want {
			tb.Errorf("table inet other changed:\n%s\nwant:\n%s", got, want)
		}
	}
}

// ctx returns a context for one test step.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
