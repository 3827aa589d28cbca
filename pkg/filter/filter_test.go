package filter

import (
	"bufio"
	"bytes"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/event"
)

var ref = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func mini(t testing.TB) *Filter {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "valid", "mini.toml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile("mini", "testdata/valid/mini.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCompileInvalid compiles each file in testdata/invalid, whose first
// line is "# error: " and the start of the error it must produce.
func TestCompileInvalid(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# error: ")
			if !ok {
				t.Fatalf("first line must be '# error: ...'")
			}
			_, err = Compile("x", strings.TrimPrefix(path, "testdata/"), data)
			if err == nil {
				t.Fatalf("compiled, want error %q", want)
			}
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n  %s\nwant it to start with\n  %s", err, want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	f := mini(t)
	tests := []struct {
		name string
		line string
		ok   bool
		want event.Event
	}{
		{"ipv4", "Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.1"), Kind: event.AuthFailure, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC)}},
		{"user", "Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]: user=<admin>", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.1"), Kind: event.AuthFailure, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC), User: "admin"}},
		{"ipv6", "Nov 28 02:00:19 mx mta[1]: auth failed for [2001:DB8::1]", true,
			event.Event{Addr: netip.MustParseAddr("2001:db8::1"), Kind: event.AuthFailure, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC)}},
		{"ipv4-mapped", "Nov 28 02:00:19 mx mta[1]: auth failed for [::ffff:192.0.2.1]", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.1"), Kind: event.AuthFailure, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC)}},
		{"helo", "Nov 28 02:00:19 mx mta[1]: bad helo from [192.0.2.2]: ylmf-pc", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.2"), Kind: event.BadHELO, Rule: 1, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC), HELO: "ylmf-pc"}},
		{"inline time", "192.0.2.3   [0968] 16:14:01 talked first", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.3"), Kind: event.Pregreet, Rule: 2, Time: time.Date(2026, 11, 27, 16, 14, 1, 0, time.UTC)}},
		{"no timestamp", "mx mta[1]: auth failed for [192.0.2.4]", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.4"), Kind: event.AuthFailure}},
		{"invalid address", "Nov 28 02:00:19 mx mta[1]: auth failed for [999.1.1.1]", false, event.Event{}},
		{"unspecified address", "Nov 28 02:00:19 mx mta[1]: auth failed for [0.0.0.0]", false, event.Event{}},
		{"multicast address", "Nov 28 02:00:19 mx mta[1]: auth failed for [ff02::1]", false, event.Event{}},
		{"ignored", "Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]: user=<nobody>", false, event.Event{}},
		{"other program", "Nov 28 02:00:19 mx other[1]: auth failed for [192.0.2.1]", false, event.Event{}},
		{"not at the start", "Nov 28 02:00:19 mx mta[1]: x auth failed for [192.0.2.1]", false, event.Event{}},
		{"injected line", "Nov 28 02:00:19 mx mta[1]: bad helo from [192.0.2.2]: Nov 28 02:00:19 mx mta[1]: auth failed for [203.0.113.9]", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.2"), Kind: event.BadHELO, Rule: 1, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC),
				HELO: "Nov 28 02:00:19 mx mta[1]: auth failed for [203.0.113.9]"}},
		{"nothing", "Nov 28 02:00:19 mx mta[1]: connect from [192.0.2.1]", false, event.Event{}},
		{"leading blank", " auth failed for [", false, event.Event{}},
		{"a tag of a bracket alone", "]: bad helo from [", false, event.Event{}},
		{"a tag without a program", "[12]: bad helo from [192.0.2.2]: x", false, event.Event{}},
		{"blank after the host", "Nov 28 02:00:19 mx  mta[1]: auth failed for [192.0.2.1]", false, event.Event{}},
		{"no tag", "Nov 28 02:00:19 mx auth failed for [192.0.2.1]", false, event.Event{}},
		{"no host name", "Nov 28 02:00:19 mta[1]: auth failed for [192.0.2.5]", true,
			event.Event{Addr: netip.MustParseAddr("192.0.2.5"), Kind: event.AuthFailure, Time: time.Date(2026, 11, 28, 2, 0, 19, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := f.Match([]byte(tt.line), ref)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (event %+v)", ok, tt.ok, got)
			}
			if !ok {
				return
			}
			tt.want.Filter = "mini"
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	a := mini(t)
	b, err := Compile("other", "other.toml", []byte(`
[[rule]]
event = "relay_denied"
regex = '\S+ mta\[\d+\]: auth failed for \[<HOST>\]'
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSet(a, b)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Match([]byte("Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]"), ref, nil)
	if len(got) != 2 || got[0].Filter != "mini" || got[1].Filter != "other" || got[1].Kind != event.RelayDenied {
		t.Fatalf("got %+v, want one event of each filter in order", got)
	}
	if got := s.Match([]byte("Nov 28 02:00:19 mx mta[1]: bad helo from [192.0.2.2]: x"), ref, nil); len(got) != 1 || got[0].Filter != "mini" {
		t.Fatalf("got %+v", got)
	}
	if got := s.Filters(); strings.Join(got, ",") != "mini,other" {
		t.Errorf("Filters() = %v", got)
	}
}

func TestMatchDoesNotAllocateOnMisses(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := mini(t)
	lines := [][]byte{
		[]byte("Nov 28 02:00:19 mx postfix/qmgr[700]: 4NQ3Lb0Abcz1: from=<news@example.net>, size=4120, nrcpt=1 (queue active)"),
		[]byte("Nov 28 02:00:19 mx mta[1]: x auth failed for [192.0.2.1]"), // literal found, regex fails
	}
	m := f.NewMatcher()
	var dst []event.Event
	m.Match(lines[1], ref, dst) // the memo's memory, once
	for _, l := range lines {
		if n := testing.AllocsPerRun(100, func() { f.Match(l, ref) }); n != 0 {
			t.Errorf("%q: %v allocations", l, n)
		}
		if n := testing.AllocsPerRun(100, func() { dst = m.Match(l, ref, dst[:0]) }); n != 0 {
			t.Errorf("%q: %v allocations in a Matcher", l, n)
		}
	}
}

// TestPrefilter compares the prefilter with bytes.Contains on random
// literals and lines: over a small alphabet, where overlaps are common, over
// every byte value with many literals, and with literals long enough for
// every sampling stride.
func TestPrefilter(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	round := 0
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			if round%2 == 0 {
				b[i] = "abc \xff"[rng.Intn(5)]
			} else {
				b[i] = byte(rng.Intn(256)) // every byte value: 257 classes
			}
		}
		return string(b)
	}
	for ; round < 300; round++ {
		lits := make([]string, 1+rng.Intn(20))
		if round%2 == 1 {
			lits = make([]string, 100+rng.Intn(100))
		}
		for i := range lits {
			lits[i] = word(1 + rng.Intn(6))
			if round >= 200 { // long literals: every stride, few short ones
				lits[i] = word(4 + rng.Intn(20))
			}
		}
		a := newPrefilter(lits)
		for k := 0; k < 50; k++ {
			line := []byte(word(rng.Intn(80)))
			if round%2 == 1 {
				line = append(line, lits[rng.Intn(len(lits))]...) // make hits likely
			}
			var found litset
			any := a.scan(line, &found)
			sawAny := false
			for id, l := range lits {
				want := bytes.Contains(line, []byte(l))
				sawAny = sawAny || want
				if found.has(int32(id)) != want {
					t.Fatalf("literals %q, line %q: literal %q found=%v, want %v", lits, line, l, found.has(int32(id)), want)
				}
			}
			if any != sawAny {
				t.Fatalf("scan reported %v, want %v", any, sawAny)
			}
		}
	}
}

// FuzzMatch feeds arbitrary lines to the test filter: no panic, and an
// address only where the line literally holds it in brackets.
func FuzzMatch(f *testing.F) {
	fl := mini(f)
	sc := bufio.NewScanner(strings.NewReader(`Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]
Nov 28 02:00:19 mx mta[1]: auth failed for [::ffff:192.0.2.1]: user=<x>
Nov 28 02:00:19 mx mta[1]: bad helo from [2001:db8::1]: [192.0.2.9]
192.0.2.3   [0968] 16:14:01 talked first`))
	for sc.Scan() {
		f.Add(sc.Bytes())
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, ok := fl.Match(line, ref)
		if !ok {
			return
		}
		if !ev.Addr.IsValid() {
			t.Fatalf("event without an address: %+v", ev)
		}
		if !testutil.LiterallyHolds(line, ev.Addr) {
			t.Fatalf("%s is not written in the line %q", ev.Addr, line)
		}
	})
}

// FuzzParseAddr holds the dotted-quad fast path to netip.ParseAddr's
// answers.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.", "1..2.3", "1.2.3.04", "0.0.0.00", "::ffff:1.2.3.4", "2001:db8::1", "1.2.3.4%eth0", "1234.1.1.1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseIPv4(b)
		want, err := netip.ParseAddr(string(b))
		if ok && (err != nil || got != want) {
			t.Fatalf("%q: fast path gave %v, ParseAddr %v %v", b, got, want, err)
		}
		if !ok && err == nil && want.Is4() {
			t.Fatalf("%q: fast path refused the IPv4 address %v", b, want)
		}
	})
}
