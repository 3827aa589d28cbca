package jail

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// botnetAddr returns the i-th address of a rotating botnet: three in four
// IPv4 (spread over the address space), one in four IPv6, each in a /64 of
// its own.
func botnetAddr(i int) netip.Addr {
	if i%4 == 3 {
		var a [16]byte
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
		a[4], a[5], a[6], a[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		a[15] = 1
		return netip.AddrFrom16(a)
	}
	v := uint32(i) * 2654435761 // a bijection of uint32: distinct addresses
	return netip.AddrFrom4([4]byte{byte(v>>24) | 1, byte(v >> 16), byte(v >> 8), byte(v)})
}

// BenchmarkObserveNewAddress counts one strike each from ever new
// addresses (a rotating botnet), and reports the heap each tracked address
// costs.
func BenchmarkObserveNewAddress(b *testing.B) {
	j := New(cfg(), nil)
	ev := event.Event{Time: t0, Kind: event.AuthFailure}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Addr = netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		j.Observe(&ev, nil)
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if j.Tracked() > 0 {
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(j.Tracked()), "bytes/addr")
	}
	runtime.KeepAlive(j)
}

// vmRSS returns the process's resident memory in bytes, or -1 where
// /proc/self/status cannot tell.
func vmRSS() int64 {
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// BenchmarkTrack1M tracks 1,000,000 distinct addresses within the window
// (a quarter of them IPv6) in a fresh jail, one strike each (and four for
// the most max_strikes 5 keeps), and reports what each costs: bytes/addr
// of live heap after a collection, and rss-bytes/addr of resident memory
// right after the last strike (GC headroom and garbage included), measured
// from a heap returned to the OS.
func BenchmarkTrack1M(b *testing.B) {
	const n = 1_000_000
	for _, c := range []struct {
		name    string
		cfg     Config
		strikes int
	}{{"max_strikes_5", cfg(), 1}, {"postfix", botnet(), 1}, {"max_strikes_5_4_strikes", cfg(), 4}} {
		b.Run(c.name, func(b *testing.B) {
			var heap, rss float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var m0, m1 runtime.MemStats
				debug.FreeOSMemory()
				runtime.ReadMemStats(&m0)
				rss0 := vmRSS()
				b.StartTimer()
				j := New(c.cfg, nil)
				ev := event.Event{Kind: event.AuthFailure}
				for k := 0; k < n*c.strikes; k++ {
					ev.Addr = botnetAddr(k % n)
					ev.Time = t0.Add(time.Duration(k) * 100 * time.Microsecond)
					j.Observe(&ev, nil)
				}
				b.StopTimer()
				rss1 := vmRSS()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				if j.Tracked() != n {
					b.Fatalf("tracked %d, want %d", j.Tracked(), n)
				}
				heap = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / n
				rss = float64(rss1-rss0) / n
				runtime.KeepAlive(j)
			}
			b.ReportMetric(heap, "bytes/addr")
			if rss > 0 {
				b.ReportMetric(rss, "rss-bytes/addr")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n*c.strikes), "ns/strike")
		})
	}
}

// BenchmarkObserveKnownAddress counts strikes of addresses already tracked,
// within their window and below max_strikes: no allocation. The postfix
// case has the botnet defences on and events with a HELO and user name
// (one of each per address: nothing is learned).
func BenchmarkObserveKnownAddress(b *testing.B) {
	const n = 1024
	users, helos := make([]string, n), make([]string, n)
	for i := range users {
		users[i], helos[i] = fmt.Sprintf("User%d", i), fmt.Sprintf("DESKTOP-%X", i)
	}
	for _, c := range []struct {
		name  string
		cfg   Config
		named bool
	}{{"max_strikes_1000", cfg(), false}, {"postfix", botnet(), true}} {
		b.Run(c.name, func(b *testing.B) {
			c.cfg.MaxStrikes = 1000
			c.cfg.FindTime = time.Millisecond * 50
			j := New(c.cfg, nil)
			ev := event.Event{Kind: event.AuthFailure}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ev.Addr = netip.AddrFrom4([4]byte{10, 0, byte(i % n >> 8), byte(i % n)})
				ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
				if c.named {
					ev.HELO, ev.User = helos[i%n], users[i%n]
				}
				if _, out := j.Observe(&ev, nil); out != Counted {
					b.Fatalf("event %d: %v", i, out)
				}
			}
		})
	}
}

// BenchmarkObserveFewStrikes counts strikes at the shipped max_strikes 5:
// each address gets four strikes, then is forgotten by a sweep and starts
// again (no bans, no allocation).
func BenchmarkObserveFewStrikes(b *testing.B) {
	const n = 1024
	j := New(cfg(), nil)
	ev := event.Event{Kind: event.AuthFailure}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		round := i / (4 * n)
		ev.Addr = netip.AddrFrom4([4]byte{10, 0, byte(i % n >> 8), byte(i % n)})
		ev.Time = t0.Add(time.Duration(round) * time.Hour).Add(time.Duration(i%(4*n)) * time.Microsecond)
		if i%(4*n) == 0 && round > 0 {
			j.Sweep(ev.Time)
		}
		if _, out := j.Observe(&ev, nil); out != Counted {
			b.Fatalf("event %d: %v", i, out)
		}
	}
}

// BenchmarkObserveNotCounted runs events that count nothing: a kind of no
// weight, an ignored address, an address already banned, a trusted one.
// None allocates.
func BenchmarkObserveNotCounted(b *testing.B) {
	banned := netip.MustParseAddr("203.0.113.7")
	trusted := netip.MustParseAddr("198.51.100.9")
	cases := []struct {
		name string
		ev   event.Event
		want Outcome
	}{
		{"no_weight", event.Event{Addr: banned, Kind: event.RateLimit, HELO: "DESKTOP-4F2K9", User: "Admin"}, NoWeight},
		{"ignored", event.Event{Addr: netip.MustParseAddr("192.0.2.1"), Kind: event.AuthFailure, HELO: "DESKTOP-4F2K9", User: "Admin"}, Ignored},
		{"already_banned", event.Event{Addr: banned, Kind: event.AuthFailure, HELO: "DESKTOP-4F2K9", User: "Admin"}, AlreadyBanned},
		{"already_banned_subnet", event.Event{Addr: netip.MustParseAddr("203.0.114.9"), Kind: event.BadHELO, HELO: "DESKTOP-4F2K9"}, AlreadyBanned},
		{"trusted", event.Event{Addr: trusted, Kind: event.AuthFailure, HELO: "DESKTOP-4F2K9", User: "Admin"}, Trusted},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cf := botnet()
			cf.Weights[event.RateLimit.Index()] = 0
			j := New(cf, NewIgnore(netip.MustParsePrefix("192.0.2.0/24")))
			j.MarkBanned(netip.PrefixFrom(banned, 32), t0.Add(time.Hour))
			j.MarkBanned(netip.MustParsePrefix("203.0.114.0/24"), t0.Add(time.Hour))
			ok := event.Event{Time: t0, Addr: trusted, Kind: event.AuthSuccess, User: "alice"}
			j.Observe(&ok, nil)
			ev := c.ev
			ev.Time = t0
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, out := j.Observe(&ev, nil); out != c.want {
					b.Fatalf("%v, want %v", out, c.want)
				}
			}
		})
	}
}
