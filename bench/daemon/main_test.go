package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestChunks(t *testing.T) {
	line := strings.Repeat("x", 99) + "\n"
	for _, tc := range []struct {
		name  string
		lines int
	}{
		{"empty", 0},
		{"one line", 1},
		{"less than a chunk", 1000},
		{"several chunks", 3*chunkSize/len(line) + 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(strings.Repeat(line, tc.lines))
			cs := chunks(data)
			var joined []byte
			var lines int64
			for _, c := range cs {
				if len(c.data) > chunkSize || len(c.data) == 0 || c.data[len(c.data)-1] != '\n' {
					t.Fatalf("chunk of %d bytes, last %q: want whole lines, at most %d bytes", len(c.data), c.data[len(c.data)-1], chunkSize)
				}
				lines += int64(bytes.Count(c.data, []byte{'\n'}))
				if c.lines != lines {
					t.Fatalf("chunk says %d lines written, counted %d", c.lines, lines)
				}
				joined = append(joined, c.data...)
			}
			if !bytes.Equal(joined, data) || lines != int64(tc.lines) {
				t.Fatalf("chunks hold %d lines, %d bytes; want %d, %d", lines, len(joined), tc.lines, len(data))
			}
		})
	}
}

func TestCommas(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-45000, "-45,000"},
	} {
		if got := commas(tc.n); got != tc.want {
			t.Errorf("commas(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestSample(t *testing.T) {
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	got := sample(1000, 4, addr)
	want := []netip.Addr{addr(249), addr(499), addr(749), addr(999)}
	if !slices.Equal(got, want) {
		t.Errorf("sample(1000, 4) = %v, want %v", got, want)
	}
	if got := sample(3, 10, addr); len(got) != 3 || got[2] != addr(2) {
		t.Errorf("sample(3, 10) = %v, want all three", got)
	}
}

func TestIsSet(t *testing.T) {
	for _, tc := range []struct {
		name, jail, kind string
		want             bool
	}{
		{"postfix_v4_3", "postfix", "v4", true},
		{"postfix_v4", "postfix", "v4", true},
		{"postfix_v6_3", "postfix", "v4", false},
		{"postfix_net4_3", "postfix", "v4", false},
		{"postfix2_v4_1", "postfix", "v4", false},
	} {
		if got := isSet(tc.name, tc.jail, tc.kind); got != tc.want {
			t.Errorf("isSet(%q, %q, %q) = %v", tc.name, tc.jail, tc.kind, got)
		}
	}
}

// A NEWSETELEM notification as the kernel sends it: the monitor takes
// each new key of a banwatch set once, wakes its waiter, and ignores
// other tables.
func TestMonitorHandle(t *testing.T) {
	msg := func(tbl, set string, keys ...netip.Addr) netlink.Message {
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, tbl)
		ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
		ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
			for _, k := range keys {
				ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
					ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
						ae.Bytes(unix.NFTA_DATA_VALUE, k.AsSlice())
						return nil
					})
					ae.Uint64(unix.NFTA_SET_ELEM_TIMEOUT, 1000)
					return nil
				})
			}
			return nil
		})
		b, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM)},
			Data: append([]byte{unix.NFPROTO_INET, 0, 0, 0}, b...)}
	}
	a, b, c := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:db8::1")
	m := &monitor{sets: map[string]*setSeen{}, waiters: map[netip.Addr]chan time.Time{}}
	w := m.expect(b)
	at := time.Unix(1000, 0)
	m.handle(msg(table, "bench_v4_2", a, b), at)
	m.handle(msg(table, "bench_v4_2", a), at.Add(time.Second)) // a re-add
	m.handle(msg(table, "bench_v6_2", c), at)
	m.handle(msg("other", "bench_v4_2", netip.MustParseAddr("198.18.0.3")), at)
	if n, last, _ := m.count("bench", "v4"); n != 2 || !last.Equal(at) {
		t.Errorf("count v4 = %d, %v; want 2, %v", n, last, at)
	}
	if n, _, _ := m.count("bench", "v6"); n != 1 {
		t.Errorf("count v6 = %d, want 1", n)
	}
	select {
	case got := <-w:
		if !got.Equal(at) {
			t.Errorf("waiter got %v, want %v", got, at)
		}
	default:
		t.Error("the waiter of 198.18.0.2 was not woken")
	}
}

// The judged ratio is the median of the rounds' own ratios, not the ratio
// of the medians, each against the faster of the two bare tails; the
// daemon's run reported is the one of median rate.
func TestIngestMedians(t *testing.T) {
	rs := ingestRounds{
		{daemon: &ingestRun{rate: 300}, tail: 400, tailAs: 360}, // 75%
		{daemon: &ingestRun{rate: 200}, tail: 150, tailAs: 210}, // 95%: against tailAs
		{daemon: &ingestRun{rate: 250}, tail: 500, tailAs: 100}, // 50%
	}
	d, tail, tailAs, ratio := rs.medians()
	if d != rs[2].daemon || tail != 400 || tailAs != 210 || ratio != 75 {
		t.Errorf("medians = run of %v lines/s, tail %v, as banwatchd %v, ratio %v; want 250, 400, 210, 75", d.rate, tail, tailAs, ratio)
	}
	if got := rs.list(func(r ingestRound) float64 { return r.tail }); got != "400, 150, 500" {
		t.Errorf("list = %q", got)
	}
}
