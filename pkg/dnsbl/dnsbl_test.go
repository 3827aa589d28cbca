package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var ip = netip.MustParseAddr

// start makes a Resolver and runs it until the test ends.
func start(t testing.TB, opts Options) *Resolver {
	t.Helper()
	r, err := New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// lookup looks a up and waits for the result.
func lookup(t testing.TB, r *Resolver, a netip.Addr) Result {
	t.Helper()
	ch := make(chan Result, 1)
	if !r.Lookup(a, func(res Result) { ch <- res }) {
		t.Fatalf("Lookup(%v) dropped", a)
	}
	select {
	case res := <-ch:
		return res
	case <-time.After(10 * time.Second):
		t.Fatalf("Lookup(%v): no result", a)
		return Result{}
	}
}

func lists(zones ...string) []List {
	var ls []List
	for _, z := range zones {
		l, err := ParseList(z)
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
	}
	return ls
}

func TestParseList(t *testing.T) {
	r := func(lo, hi string) CodeRange { return CodeRange{ip(lo), ip(hi)} }
	good := []struct {
		in   string
		want List
		str  string
	}{
		{"zen.spamhaus.org", List{Zone: "zen.spamhaus.org"}, "zen.spamhaus.org"},
		{" ZEN.Spamhaus.org. ", List{Zone: "zen.spamhaus.org"}, "zen.spamhaus.org"},
		{"zen.spamhaus.org=127.0.0.2-127.0.0.7", List{"zen.spamhaus.org", []CodeRange{r("127.0.0.2", "127.0.0.7")}}, "zen.spamhaus.org=127.0.0.2-127.0.0.7"},
		{"zen.spamhaus.org=127.0.0.2,127.0.0.4-127.0.0.7", List{"zen.spamhaus.org", []CodeRange{r("127.0.0.2", "127.0.0.2"), r("127.0.0.4", "127.0.0.7")}}, "zen.spamhaus.org=127.0.0.2,127.0.0.4-127.0.0.7"},
		{"bl.example = 127.0.0.2 , 127.0.0.10 - 127.0.0.11", List{"bl.example", []CodeRange{r("127.0.0.2", "127.0.0.2"), r("127.0.0.10", "127.0.0.11")}}, "bl.example=127.0.0.2,127.0.0.10-127.0.0.11"},
		{"b.barracudacentral.org", List{Zone: "b.barracudacentral.org"}, "b.barracudacentral.org"},
		{"_x.bl-1.example", List{Zone: "_x.bl-1.example"}, "_x.bl-1.example"},
	}
	for _, tc := range good {
		got, err := ParseList(tc.in)
		if err != nil {
			t.Errorf("ParseList(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseList(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("ParseList(%q).String() = %q, want %q", tc.in, got.String(), tc.str)
		}
	}
	bad := []struct{ in, want string }{
		{"", "no zone"},
		{"  ", "no zone"},
		{"=127.0.0.2,127.0.0.4-127.0.0.7", "no zone"},
		{"zen.spamhaus.org=", "no return codes"},
		{"zen..spamhaus.org", "empty label"},
		{".zen.spamhaus.org", "empty label"},
		{"zen spamhaus.org", "character"},
		{"zen.spamhaus.org/24", "character"},
		{"-zen.spamhaus.org", "starting or ending"},
		{strings.Repeat("a", 64) + ".example", "longer than 63"},
		{strings.Repeat("abcdefghi.", 20) + "example", "characters long"},
		{"zen.spamhaus.org=127.0.0.7-127.0.0.2", "backwards"},
		{"zen.spamhaus.org=1.2.3.4", "outside 127.0.0.0/8"},
		{"zen.spamhaus.org=127.0.0.2-128.0.0.1", "outside 127.0.0.0/8"},
		{"zen.spamhaus.org=::1", "not an IPv4 address"},
		{"zen.spamhaus.org=::ffff:127.0.0.2", "not an IPv4 address"},
		{"zen.spamhaus.org=listed", "not an IPv4 address"},
		{"zen.spamhaus.org=127.0.0.2-7", "not an IPv4 address"},
		{"zen.spamhaus.org=127.0.0.2,", "empty return code"},
		{"zen.spamhaus.org=,127.0.0.2", "empty return code"},
		{"zen.spamhaus.org=127.0.0.2-", "empty end"},
	}
	for _, tc := range bad {
		_, err := ParseList(tc.in)
		if err == nil {
			t.Errorf("ParseList(%q): no error", tc.in)
			continue
		}
		if !strings.HasPrefix(err.Error(), "dnsbl: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseList(%q): error %q, want it to say %q", tc.in, err, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	zen := lists("zen.spamhaus.org")
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no lists", Options{}, "no lists"},
		{"twice", Options{Lists: lists("zen.spamhaus.org", "ZEN.spamhaus.org.")}, "twice"},
		{"bad zone", Options{Lists: []List{{Zone: "a..b"}}}, "empty label"},
		{"bad codes", Options{Lists: []List{{Zone: "a.b", Codes: []CodeRange{{ip("127.0.0.3"), ip("127.0.0.2")}}}}}, "backwards"},
		{"zero codes", Options{Lists: []List{{Zone: "a.b", Codes: []CodeRange{{}}}}}, "not an IPv4"},
		{"bad server", Options{Lists: zen, Server: "1.2.3.4:dns"}, "bad port"},
		{"bad server v6", Options{Lists: zen, Server: "2001:db8::1:53:x"}, "want"},
		{"negative timeout", Options{Lists: zen, Timeout: -time.Second}, "negative timeout"},
		{"negative queue", Options{Lists: zen, Queue: -1}, "negative queue"},
	} {
		_, err := New(tc.opts, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "dnsbl: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestServerAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.53":           "192.0.2.53:53",
		"192.0.2.53:5353":      "192.0.2.53:5353",
		"2001:db8::53":         "[2001:db8::53]:53",
		"[2001:db8::53]":       "[2001:db8::53]:53",
		"[2001:db8::53]:5353":  "[2001:db8::53]:5353",
		"ns.example":           "ns.example:53",
		"ns.example:5300":      "ns.example:5300",
		" 127.0.0.1:53 ":       "127.0.0.1:53",
		"[fe80::1%eth0]:53":    "[fe80::1%eth0]:53",
		"localhost":            "localhost:53",
		"unbound.internal:853": "unbound.internal:853",
	} {
		got, err := serverAddr(in)
		if err != nil || got != want {
			t.Errorf("serverAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{":53", "host:0", "host:99999", "[::1", "a:b:c"} {
		if got, err := serverAddr(in); err == nil {
			t.Errorf("serverAddr(%q) = %q, want an error", in, got)
		}
	}
}

func TestQueryName(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"203.0.113.7", "7.113.0.203.zen.spamhaus.org."},
		{"127.0.0.2", "2.0.0.127.zen.spamhaus.org."},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org."},
		{"2001:db8:1234:5678:9abc:def0:fedc:ba98", "8.9.a.b.c.d.e.f.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2.zen.spamhaus.org."},
	} {
		if got := queryName(ip(tc.addr), "zen.spamhaus.org"); got != tc.want {
			t.Errorf("queryName(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestQueryNamesSeen checks the names the server is asked.
func TestQueryNamesSeen(t *testing.T) {
	srv := startServer(t)
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr})
	for _, tc := range []struct{ addr, want string }{
		{"203.0.113.7", "7.113.0.203.bl.test."},
		{"::ffff:198.51.100.9", "9.100.51.198.bl.test."},
		{"2001:db8::abcd", "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test."},
		{"fe80::1%eth0", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.bl.test."},
	} {
		before := len(srv.queries())
		res := lookup(t, r, ip(tc.addr))
		if res.Err != nil || len(res.Listed) != 0 {
			t.Errorf("%s: %+v, want not listed", tc.addr, res)
		}
		q := srv.queries()[before:]
		if len(q) != 1 || q[0] != tc.want {
			t.Errorf("%s: server saw %q, want [%q]", tc.addr, q, tc.want)
		}
	}
	if res := lookup(t, r, ip("::ffff:198.51.100.9")); res.Addr != ip("198.51.100.9") {
		t.Errorf("mapped address reported as %v, want 198.51.100.9", res.Addr)
	}
}

func TestAnswers(t *testing.T) {
	const name = "7.113.0.203.bl.test"
	a := ip("203.0.113.7")
	for _, tc := range []struct {
		name    string
		list    string
		answer  []string // nil: NXDOMAIN
		rcode   int      // instead of answer when not 0
		listed  string   // code expected, "" for not listed
		err     bool
		cached  bool
		refused uint64
	}{
		{name: "listed", list: "bl.test", answer: []string{"127.0.0.2"}, listed: "127.0.0.2", cached: true},
		{name: "lowest of several", list: "bl.test", answer: []string{"127.0.0.11", "127.0.0.4"}, listed: "127.0.0.4", cached: true},
		{name: "NXDOMAIN", list: "bl.test", cached: true},
		{name: "NODATA", list: "bl.test", answer: []string{}, cached: true},
		{name: "refused", list: "bl.test", answer: []string{"127.255.255.254"}, cached: true, refused: 1},
		{name: "refused with listed", list: "bl.test", answer: []string{"127.0.0.2", "127.255.255.252"}, cached: true, refused: 1},
		{name: "refused despite codes", list: "bl.test=127.0.0.0-127.255.255.255", answer: []string{"127.255.255.255"}, cached: true, refused: 1},
		{name: "in range", list: "bl.test=127.0.0.2-127.0.0.3", answer: []string{"127.0.0.3"}, listed: "127.0.0.3", cached: true},
		{name: "out of range", list: "bl.test=127.0.0.2-127.0.0.3", answer: []string{"127.0.0.4"}, cached: true},
		{name: "one in range", list: "bl.test=127.0.0.2,127.0.0.10-127.0.0.11", answer: []string{"127.0.0.4", "127.0.0.11"}, listed: "127.0.0.11", cached: true},
		{name: "outside 127/8", list: "bl.test", answer: []string{"192.0.2.1"}, cached: true},
		{name: "outside 127/8 and listed", list: "bl.test", answer: []string{"192.0.2.1", "127.0.0.3"}, listed: "127.0.0.3", cached: true},
		{name: "SERVFAIL", list: "bl.test", rcode: dns.RcodeServerFailure, err: true},
		{name: "REFUSED", list: "bl.test", rcode: dns.RcodeRefused, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t)
			switch {
			case tc.rcode != 0:
				srv.setRcode(name, tc.rcode)
			case tc.answer != nil:
				srv.set(name, tc.answer...)
			}
			r := start(t, Options{Lists: lists(tc.list), Server: srv.addr})
			res := lookup(t, r, a)
			if res.Addr != a {
				t.Errorf("Addr = %v", res.Addr)
			}
			if (res.Err != nil) != tc.err {
				t.Errorf("Err = %v, want error: %v", res.Err, tc.err)
			}
			if res.Err != nil && !strings.HasPrefix(res.Err.Error(), "dnsbl: ") {
				t.Errorf("Err = %q, want a \"dnsbl: \" prefix", res.Err)
			}
			var want []Answer
			if tc.listed != "" {
				want = []Answer{{List: "bl.test", Code: ip(tc.listed)}}
			}
			if !reflect.DeepEqual(res.Listed, want) {
				t.Errorf("Listed = %v, want %v", res.Listed, want)
			}
			c, ok := r.Cached(a)
			if ok != tc.cached {
				t.Errorf("cached: %v, want %v", ok, tc.cached)
			}
			if ok && !reflect.DeepEqual(c.Listed, want) {
				t.Errorf("cached Listed = %v, want %v", c.Listed, want)
			}
			st := r.Stats()
			if st.Refused != tc.refused {
				t.Errorf("Refused = %d, want %d", st.Refused, tc.refused)
			}
			wantStats := Stats{Lookups: 1, Refused: tc.refused}
			switch {
			case tc.listed != "":
				wantStats.Listed = 1
			case tc.err:
				wantStats.Errors = 1
			default:
				wantStats.NotListed = 1
			}
			if st != wantStats {
				t.Errorf("Stats = %+v, want %+v", st, wantStats)
			}
		})
	}
}

func TestMultipleLists(t *testing.T) {
	srv := startServer(t)
	srv.set("1.0.0.10.one.test", "127.0.0.2")
	srv.set("2.0.0.10.one.test", "127.0.0.2")
	srv.set("2.0.0.10.two.test", "127.0.0.4")
	srv.set("3.0.0.10.two.test", "127.0.0.9") // not in two.test's codes
	srv.setRcode("4.0.0.10.two.test", dns.RcodeServerFailure)
	srv.set("4.0.0.10.one.test", "127.0.0.3")
	r := start(t, Options{Lists: lists("one.test", "two.test=127.0.0.2-127.0.0.7"), Server: srv.addr})
	for _, tc := range []struct {
		addr string
		want []Answer
		err  bool
	}{
		{"10.0.0.1", []Answer{{"one.test", ip("127.0.0.2")}}, false},
		{"10.0.0.2", []Answer{{"one.test", ip("127.0.0.2")}, {"two.test", ip("127.0.0.4")}}, false},
		{"10.0.0.3", nil, false},
		{"10.0.0.4", []Answer{{"one.test", ip("127.0.0.3")}}, true},
	} {
		res := lookup(t, r, ip(tc.addr))
		if !reflect.DeepEqual(res.Listed, tc.want) || (res.Err != nil) != tc.err {
			t.Errorf("%s: Listed %v, Err %v; want %v, error: %v", tc.addr, res.Listed, res.Err, tc.want, tc.err)
		}
	}
	if n := srv.count(); n != 8 {
		t.Errorf("server saw %d queries, want 8 (4 addresses × 2 lists)", n)
	}
	if _, ok := r.Cached(ip("10.0.0.4")); ok {
		t.Error("a result with an error was cached")
	}
}

func TestCache(t *testing.T) {
	srv := startServer(t)
	srv.set("1.0.0.10.bl.test", "127.0.0.2")
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr, PositiveTTL: time.Hour, NegativeTTL: time.Hour})
	for _, a := range []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2")} { // listed, not listed
		first := lookup(t, r, a)
		n := srv.count()
		second := lookup(t, r, a)
		if srv.count() != n {
			t.Errorf("%v: looked up again within the TTL", a)
		}
		if !reflect.DeepEqual(first, second) {
			t.Errorf("%v: cached result %+v, want %+v", a, second, first)
		}
		if c, ok := r.Cached(a); !ok || !reflect.DeepEqual(c, first) {
			t.Errorf("%v: Cached = %+v, %v; want %+v", a, c, ok, first)
		}
	}
	if st := r.Stats(); st.Lookups != 4 || st.CacheHits != 2 || st.Listed != 1 || st.NotListed != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if _, ok := r.Cached(ip("10.0.0.3")); ok {
		t.Error("Cached of an address never looked up")
	}
	// The mapped form shares the cache entry.
	if _, ok := r.Cached(ip("::ffff:10.0.0.1")); !ok {
		t.Error("Cached of the IPv4-mapped form: not found")
	}
	// Results handed out are copies.
	c, _ := r.Cached(ip("10.0.0.1"))
	c.Listed[0].List = "changed"
	if c, _ := r.Cached(ip("10.0.0.1")); c.Listed[0].List != "bl.test" {
		t.Error("changing a result changed the cache")
	}
}

func TestCacheExpiry(t *testing.T) {
	const ttl = 150 * time.Millisecond
	srv := startServer(t)
	srv.set("1.0.0.10.bl.test", "127.0.0.2")
	srv.set("3.0.0.10.bl.test", "127.255.255.254")
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr, PositiveTTL: ttl, NegativeTTL: 2 * ttl})
	listed, notListed, refused := ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")
	for _, a := range []netip.Addr{listed, notListed, refused} {
		lookup(t, r, a)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if _, ok := r.Cached(listed); ok {
		t.Error("positive result still cached after its TTL")
	}
	for _, a := range []netip.Addr{notListed, refused} {
		if _, ok := r.Cached(a); !ok {
			t.Errorf("%v: negative result expired before its TTL", a)
		}
	}
	n := srv.count()
	if res := lookup(t, r, listed); len(res.Listed) != 1 || srv.count() != n+1 {
		t.Errorf("after expiry: %+v, %d queries, want listed after one more query", res, srv.count()-n)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	for _, a := range []netip.Addr{notListed, refused} {
		if _, ok := r.Cached(a); ok {
			t.Errorf("%v: negative result still cached after its TTL", a)
		}
		lookup(t, r, a)
	}
	if got := srv.count(); got != n+3 {
		t.Errorf("%d queries after expiry, want 3", got-n)
	}
}

func TestCacheEviction(t *testing.T) {
	srv := startServer(t)
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr, MaxCache: 3})
	for i := range 5 {
		lookup(t, r, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	for i := range 5 {
		_, ok := r.Cached(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
		if want := i >= 2; ok != want {
			t.Errorf("10.0.0.%d cached: %v, want %v", i, ok, want)
		}
	}
}

func TestRefusedLoggedOnce(t *testing.T) {
	srv := startServer(t)
	for i := range 3 {
		srv.set(fmt.Sprintf("%d.0.0.10.bl.test", i), "127.255.255.254")
	}
	h := &recordHandler{}
	r, err := New(Options{Lists: lists("bl.test"), Server: srv.addr}, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	for i := range 3 {
		if res := lookup(t, r, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})); len(res.Listed) != 0 || res.Err != nil {
			t.Errorf("refused: %+v, want not listed", res)
		}
	}
	if got := h.warnings(); len(got) != 1 || got[0] != "the DNSBL refused the query (open resolver?)" {
		t.Errorf("warnings %q, want the refusal once", got)
	}
	if st := r.Stats(); st.Refused != 3 || st.NotListed != 3 {
		t.Errorf("Stats = %+v", st)
	}
}

type recordHandler struct {
	mu   sync.Mutex
	warn []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warn = append(h.warn, rec.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *recordHandler) warnings() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.warn...)
}

func TestCoalescing(t *testing.T) {
	srv := startServer(t)
	srv.set("1.0.0.10.bl.test", "127.0.0.2")
	srv.setDelay(200 * time.Millisecond)
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr})
	const n = 20
	results := make(chan Result, n)
	for i := range n {
		a := ip("10.0.0.1")
		if i%2 == 1 {
			a = ip("::ffff:10.0.0.1")
		}
		if !r.Lookup(a, func(res Result) { results <- res }) {
			t.Fatal("Lookup dropped")
		}
	}
	for range n {
		select {
		case res := <-results:
			if len(res.Listed) != 1 {
				t.Errorf("result %+v, want listed", res)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("not all callbacks were called")
		}
	}
	if c := srv.count(); c != 1 {
		t.Errorf("server saw %d queries, want 1", c)
	}
}

// TestCachedResultAsync shows that a cached result is not handed to done
// from within Lookup: the only worker is busy, yet Lookup returns.
func TestCachedResultAsync(t *testing.T) {
	srv := startServer(t)
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr, Workers: 1})
	a := ip("10.0.0.1")
	release := make(chan struct{})
	busy := make(chan struct{})
	r.Lookup(a, func(Result) { close(busy); <-release })
	<-busy // a is cached now, and the worker is blocked in the callback
	var called atomic.Bool
	got := make(chan Result, 1)
	if !r.Lookup(a, func(res Result) { called.Store(true); got <- res }) {
		t.Fatal("Lookup dropped")
	}
	if called.Load() {
		t.Fatal("done called from within Lookup")
	}
	close(release)
	if res := <-got; res.Addr != a || res.Err != nil {
		t.Errorf("cached result %+v", res)
	}
}

func TestDeadServer(t *testing.T) {
	srv := startServer(t)
	srv.setDrop(true)
	const timeout = 200 * time.Millisecond
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr, Timeout: timeout})
	a := ip("10.0.0.1")
	ch := make(chan Result, 1)
	t0 := time.Now()
	if !r.Lookup(a, func(res Result) { ch <- res }) {
		t.Fatal("Lookup dropped")
	}
	if d := time.Since(t0); d > timeout/2 {
		t.Errorf("Lookup took %v", d)
	}
	res := <-ch
	if d := time.Since(t0); d < timeout {
		t.Errorf("result after %v, before the timeout", d)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) || !strings.HasPrefix(res.Err.Error(), "dnsbl: ") || len(res.Listed) != 0 {
		t.Errorf("result %+v, want a timeout", res)
	}
	t.Log(res.Err)
	if _, ok := r.Cached(a); ok {
		t.Error("a timed-out look-up was cached")
	}
	if st := r.Stats(); st.Errors != 1 || st.Listed+st.NotListed != 0 {
		t.Errorf("Stats = %+v", st)
	}
	// The next event asks again.
	res = lookup(t, r, a)
	if res.Err == nil || srv.count() != 2 {
		t.Errorf("second look-up: %+v after %d queries", res, srv.count())
	}
}

// deadServer returns the address of a UDP socket that never answers.
func deadServer(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// TestDeadServerQueueBound makes 10,000 look-ups of distinct addresses
// against a dead server with the default queue: they return at once, and
// those beyond the queue are dropped and counted.
func TestDeadServerQueueBound(t *testing.T) {
	r := start(t, Options{Lists: lists("bl.test"), Server: deadServer(t)})
	const n = 10_000
	accepted := 0
	t0 := time.Now()
	for i := range n {
		if r.Lookup(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), func(Result) {}) {
			accepted++
		}
	}
	t.Logf("%d Lookup calls in %v (%v each), %d accepted", n, time.Since(t0), time.Since(t0)/n, accepted)
	if accepted < DefaultQueue || accepted > DefaultQueue+DefaultWorkers {
		t.Errorf("%d look-ups accepted, want the queue (%d) plus at most the workers (%d)", accepted, DefaultQueue, DefaultWorkers)
	}
	if st := r.Stats(); st.Dropped != uint64(n-accepted) || st.Lookups != n {
		t.Errorf("Stats = %+v, want %d dropped", st, n-accepted)
	}
}

func TestRunStopsCleanly(t *testing.T) {
	srv := startServer(t)
	srv.setDrop(true)
	base := runtime.NumGoroutine()
	r, err := New(Options{Lists: lists("one.test", "two.test"), Server: srv.addr, Timeout: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	var calls atomic.Int32
	for i := range 100 {
		r.Lookup(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), func(Result) { calls.Add(1) })
	}
	for srv.count() < 2*DefaultWorkers { // all workers waiting for answers
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Run(ctx); err == nil {
		t.Error("a second Run: no error")
	}
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c := calls.Load(); c != 0 {
		t.Errorf("%d callbacks called after cancel", c)
	}
	if r.Lookup(ip("10.0.0.1"), func(Result) { calls.Add(1) }) {
		t.Error("Lookup after Run returned: accepted")
	}
	var now int
	for range 100 {
		if now = runtime.NumGoroutine(); now <= base+2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if now > base+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Run returned, %d before New:\n%s", now, base, buf[:runtime.Stack(buf, true)])
	}
}

// TestSystemResolver goes through the net.Resolver path used without
// Options.Server, with the resolver pointed at the test server.
func TestSystemResolver(t *testing.T) {
	srv := startServer(t)
	srv.set("1.0.0.10.bl.test", "127.0.0.2")
	srv.setRcode("3.0.0.10.bl.test", dns.RcodeServerFailure)
	r, err := New(Options{Lists: lists("bl.test")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.q.(systemQuerier); !ok {
		t.Fatalf("querier %T without Server, want the system resolver", r.q)
	}
	r.q = systemQuerier{r: &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.addr)
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	if res := lookup(t, r, ip("10.0.0.1")); res.Err != nil || len(res.Listed) != 1 {
		t.Errorf("listed: %+v", res)
	}
	if res := lookup(t, r, ip("10.0.0.2")); res.Err != nil || len(res.Listed) != 0 {
		t.Errorf("NXDOMAIN: %+v", res)
	}
	if res := lookup(t, r, ip("10.0.0.3")); res.Err == nil {
		t.Errorf("SERVFAIL: %+v, want an error", res)
	}
}

func TestInvalidAddr(t *testing.T) {
	srv := startServer(t)
	r := start(t, Options{Lists: lists("bl.test"), Server: srv.addr})
	if res := lookup(t, r, netip.Addr{}); res.Err == nil {
		t.Errorf("invalid address: %+v, want an error", res)
	}
}

// BenchmarkLookupDeadServer measures what a Lookup call costs the caller
// when the DNS server never answers: workers are stuck, the queue fills up
// and the rest is dropped.
func BenchmarkLookupDeadServer(b *testing.B) {
	r := start(b, Options{Lists: lists("zen.spamhaus.org"), Server: deadServer(b)})
	done := func(Result) {}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.Lookup(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), done)
		i++
	}
	st := r.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(st.Lookups), "dropped/op")
}
