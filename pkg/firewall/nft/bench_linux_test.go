//go:build linux

package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

// v4At returns the i-th IPv4 address from 1.0.0.0 with the given shift (8
// for the i-th /24).
func v4At(i, shift int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(1<<24+i<<shift))
	return netip.AddrFrom4(b)
}

// v6At returns the i-th address in 2001:db8::/32.
func v6At(i int) netip.Addr {
	b := netip.MustParseAddr("2001:db8::").As16()
	binary.BigEndian.PutUint64(b[8:], uint64(i)+1)
	return netip.AddrFrom16(b)
}

// expiresIn is the end of an entry that lasts d from now: the zero time
// (no expiry) for 0, the past for a negative d.
func expiresIn(d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// v4Entries makes n single-address entries starting at the off-th address.
func v4Entries(jail string, off, n int, timeout time.Duration) []firewall.Entry {
	out := make([]firewall.Entry, n)
	for i := range out {
		out[i] = firewall.Entry{Jail: jail, Prefix: netip.PrefixFrom(v4At(off+i, 0), 32), Expires: expiresIn(timeout)}
	}
	return out
}

// v6Entries makes n single-address IPv6 entries.
func v6Entries(jail string, off, n int, timeout time.Duration) []firewall.Entry {
	out := make([]firewall.Entry, n)
	for i := range out {
		out[i] = firewall.Entry{Jail: jail, Prefix: netip.PrefixFrom(v6At(off+i), 128), Expires: expiresIn(timeout)}
	}
	return out
}

// net4Entries makes n disjoint /24 entries.
func net4Entries(jail string, off, n int, timeout time.Duration) []firewall.Entry {
	out := make([]firewall.Entry, n)
	for i := range out {
		out[i] = firewall.Entry{Jail: jail, Prefix: netip.PrefixFrom(v4At(off+i, 8), 24), Expires: expiresIn(timeout)}
	}
	return out
}

// BenchmarkAdd measures elements added per second, in calls of 10,000
// entries, for the address and the prefix sets, with several batch sizes.
// Run as root: go test -run '^$' -bench Add -benchtime 20x ./pkg/firewall/nft/
func BenchmarkAdd(b *testing.B) {
	const per = 10000
	kinds := []struct {
		name string
		make func(off, n int) []firewall.Entry
	}{
		{"v4", func(off, n int) []firewall.Entry { return v4Entries("bench", off, n, time.Hour) }},
		{"v6", func(off, n int) []firewall.Entry { return v6Entries("bench", off, n, time.Hour) }},
		{"net4", func(off, n int) []firewall.Entry { return net4Entries("bench", off, n, time.Hour) }},
	}
	for _, k := range kinds {
		for _, batch := range []int{128 << 10, 1 << 20, 4 << 20} {
			b.Run(fmt.Sprintf("%s/batch=%dK", k.name, batch>>10), func(b *testing.B) {
				benchAdd(b, batch, per, k.make)
			})
		}
	}
}

// benchAdd runs one BenchmarkAdd case in a fresh namespace.
func benchAdd(b *testing.B, batch, per int, mk func(off, n int) []firewall.Entry) {
	ns := newNetNS(b)
	be := newBackend(b, ns)
	ctx := testCtx(b)
	if err := be.Setup(ctx, []firewall.Jail{{Name: "bench", Ports: []uint16{22}}}); err != nil {
		b.Fatal(err)
	}
	old := maxBatchBytes
	maxBatchBytes = batch
	defer func() { maxBatchBytes = old }()
	batches := make([][]firewall.Entry, b.N)
	for i := range batches {
		batches[i] = mk(i*per, per)
	}
	b.ResetTimer()
	start := time.Now()
	for _, es := range batches {
		if err := be.Add(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "elems/s")
}

// BenchmarkReconcile measures a Reconcile of 1,000,000 IPv4 and 100,000
// IPv6 addresses into sets that already hold them (the daemon's start-up).
// Run as root: go test -run '^$' -bench Reconcile -benchtime 3x ./pkg/firewall/nft/
func BenchmarkReconcile(b *testing.B) {
	ns := newNetNS(b)
	be := newBackend(b, ns)
	ctx := testCtx(b)
	if err := be.Setup(ctx, []firewall.Jail{{Name: "bench", Ports: []uint16{22}}}); err != nil {
		b.Fatal(err)
	}
	es := append(v4Entries("bench", 0, 1000000, week), v6Entries("bench", 0, 100000, week)...)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := be.Reconcile(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(es))/time.Since(start).Seconds(), "elems/s")
}
