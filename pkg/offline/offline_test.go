package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
)

var ref = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func testSet(t *testing.T) *filter.Set {
	t.Helper()
	f, err := filter.Compile("mta", "mta.toml", []byte(`
program = 'mta'
[[rule]]
event = "auth_failure"
regex = 'auth failed for \[<HOST>\](?: user=<<USER>>)?$'
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := filter.NewSet(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRun(t *testing.T) {
	log := strings.Join([]string{
		"Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]",
		"Nov 28 02:00:20 mx mta[1]: auth failed for [192.0.2.1]\r", // CRLF
		"Nov 28 02:00:21 mx mta[1]: connect from [192.0.2.9]",
		"mx mta[1]: auth failed for [192.0.2.2]", // no timestamp
		"Nov 28 02:00:22 mx mta[1]: auth failed for [192.0.2.3] user=<" + strings.Repeat("x", MaxLine) + ">",
		"Nov 28 02:00:23 mx mta[1]: auth failed for [2001:db8::1]", // no final newline
	}, "\n")
	var got []Match
	rep, err := Run(context.Background(), testSet(t), []Input{{Name: "a.log", R: strings.NewReader(log), Ref: ref}}, func(m *Match) {
		got = append(got, *m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 6 || rep.Skipped != 1 || rep.Matched != 4 || rep.Events != 4 || rep.Unparsable != 1 {
		t.Errorf("report %+v", rep)
	}
	wantLines := []int{1, 2, 4, 6}
	if len(got) != len(wantLines) {
		t.Fatalf("got %d matches, want %d", len(got), len(wantLines))
	}
	for i, m := range got {
		if m.Line != wantLines[i] || m.File != "a.log" {
			t.Errorf("match %d at %s:%d, want line %d", i, m.File, m.Line, wantLines[i])
		}
	}
	top := rep.TopAddrs(1)
	if len(top) != 1 || top[0].Addr != netip.MustParseAddr("192.0.2.1") || top[0].Events != 2 || top[0].ByEvent()[event.AuthFailure] != 2 {
		t.Errorf("top = %+v", top)
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log := strings.Repeat("Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]\n", 70000)
	rep, err := Run(ctx, testSet(t), []Input{{Name: "a.log", R: strings.NewReader(log), Ref: ref}}, nil)
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rep.Lines >= 70000 {
		t.Errorf("read all %d lines after cancel", rep.Lines)
	}
}

func TestAppendJSON(t *testing.T) {
	m := &Match{File: "dir/mail \"x\".log", Line: 12, Event: event.Event{
		Time: time.Date(2026, 11, 28, 3, 0, 19, 0, time.FixedZone("", 3600)),
		Addr: netip.MustParseAddr("10.99.0.2"), Kind: event.AuthFailure, Filter: "postfix",
		HELO: "ylmf-pc\x01\u2028", User: "bad\xffutf8 <x>",
	}}
	got := string(AppendJSON(nil, m))
	want := `{"type":"match","file":"dir/mail \"x\".log","line":12,"time":"2026-11-28T02:00:19Z","ip":"10.99.0.2","event":"auth_failure","filter":"postfix","helo":"ylmf-pc\u0001\u2028","user":"bad\ufffdutf8 <x>"}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var back map[string]any
	if err := json.Unmarshal([]byte(got), &back); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if back["helo"] != m.HELO || back["user"] != "bad\ufffdutf8 <x>" {
		t.Errorf("round trip: %v", back)
	}
	m.Time, m.HELO, m.User = time.Time{}, "", ""
	if got := string(AppendJSON(nil, m)); !strings.Contains(got, `"time":null`) || strings.Contains(got, "helo") {
		t.Errorf("got %s", got)
	}
}

func TestRefFromName(t *testing.T) {
	tests := []struct {
		name string
		want time.Time
		ok   bool
	}{
		{"/var/log/icewarp/smtp/20150213.log", time.Date(2015, 2, 13, 23, 59, 59, 0, time.UTC), true},
		{"s20150213.txt", time.Date(2015, 2, 13, 23, 59, 59, 0, time.UTC), true},
		{"mail.log", time.Time{}, false},
		{"120150213.log", time.Time{}, false},
		{"20151313.log", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := RefFromName(tt.name, time.UTC)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("RefFromName(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCountsAndTopAddrs counts the events of many addresses, some of them
// written in IPv4-mapped IPv6 form (which counts as the IPv4 address), and
// checks the counts and TopAddrs against a plain map and a full sort.
func TestCountsAndTopAddrs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var b strings.Builder
	want := map[netip.Addr]int{}
	for i := 0; i < 20000; i++ {
		n := rng.Intn(3000)
		a := netip.AddrFrom4([4]byte{192, 0, byte(n >> 8), byte(n)})
		if n%7 == 0 {
			a = netip.AddrFrom16(a.As16()) // ::ffff:192.0.x.y
		}
		want[a.Unmap()]++
		fmt.Fprintf(&b, "Nov 28 02:00:19 mx mta[1]: auth failed for [%s]\n", a)
	}
	rep, err := Run(context.Background(), testSet(t), []Input{{Name: "a.log", R: strings.NewReader(b.String()), Ref: ref}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Addresses() != len(want) {
		t.Fatalf("%d addresses, want %d", rep.Addresses(), len(want))
	}
	var all []AddrCount
	for a, n := range want {
		all = append(all, AddrCount{Addr: a, AddrStats: AddrStats{Events: n}})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Events != all[j].Events {
			return all[i].Events > all[j].Events
		}
		return all[i].Addr.Less(all[j].Addr)
	})
	for _, n := range []int{0, 1, 10, 500, len(want), len(want) + 5} {
		top := rep.TopAddrs(n)
		if len(top) != min(n, len(want)) {
			t.Fatalf("TopAddrs(%d) gave %d", n, len(top))
		}
		for i, a := range top {
			if a.Addr != all[i].Addr || a.Events != all[i].Events || a.ByKind[event.AuthFailure.Index()] != a.Events {
				t.Fatalf("TopAddrs(%d)[%d] = %s %d, want %s %d", n, i, a.Addr, a.Events, all[i].Addr, all[i].Events)
			}
		}
	}
}

// TestAddrRecIsOneCacheLine: counting an event touches one record, which
// must fit one 64-byte cache line.
func TestAddrRecIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(addrRec{}); n != 64 {
		t.Fatalf("addrRec is %d bytes", n)
	}
}
