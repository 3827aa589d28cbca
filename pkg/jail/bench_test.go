package jail

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

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

// BenchmarkObserveKnownAddress counts strikes of addresses already tracked,
// within their window and below max_strikes: no allocation.
func BenchmarkObserveKnownAddress(b *testing.B) {
	c := cfg()
	c.MaxStrikes = 1000
	c.FindTime = time.Millisecond * 50
	j := New(c, nil)
	const n = 1024
	ev := event.Event{Kind: event.AuthFailure}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev.Addr = netip.AddrFrom4([4]byte{10, 0, byte(i % n >> 8), byte(i % n)})
		ev.Time = t0.Add(time.Duration(i) * time.Microsecond)
		j.Observe(&ev, nil)
	}
}
