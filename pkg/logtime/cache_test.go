package logtime

import (
	"testing"
	"time"
)

// checkCache parses each line with c and with ParsePrefix and fails on any
// difference.
func checkCache(t *testing.T, c *Cache, line string, ref time.Time) {
	t.Helper()
	want, wn, wok := ParsePrefix([]byte(line), ref)
	got, n, ok := c.ParsePrefix([]byte(line), ref)
	if ok != wok || n != wn || !got.Equal(want) || got.Location().String() != want.Location().String() {
		t.Fatalf("%q (ref %s): cache gave %v %d %v, ParsePrefix %v %d %v", line, ref, got, n, ok, want, wn, wok)
	}
	wn, wok = Len([]byte(line))
	if n, ok := c.Len([]byte(line)); n != wn || ok != wok {
		t.Fatalf("%q: cache's Len gave %d %v, Len %d %v", line, n, ok, wn, wok)
	}
	// LenHit, then ParseHit with what it learnt, as a Matcher does.
	n, ok, h := c.LenHit([]byte(line))
	if n != wn || ok != wok {
		t.Fatalf("%q: cache's LenHit gave %d %v, Len %d %v", line, n, ok, wn, wok)
	}
	want, wn, wok = ParsePrefix([]byte(line), ref)
	got, n, ok = c.ParseHit([]byte(line), ref, h)
	if ok != wok || n != wn || !got.Equal(want) || got.Location().String() != want.Location().String() {
		t.Fatalf("%q (ref %s): cache's ParseHit gave %v %d %v, ParsePrefix %v %d %v", line, ref, got, n, ok, want, wn, wok)
	}
}

func TestCacheMatchesParsePrefix(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	newYear := time.Date(2027, 1, 1, 0, 0, 30, 0, time.UTC)
	tests := []struct {
		name  string
		ref   []time.Time // one per line, or one for all
		lines []string
	}{
		{"syslog, one minute", []time.Time{ref}, []string{
			"Nov 28 02:00:19 mx postfix/smtpd[1]: x", "Nov 28 02:00:20 mx y", "Nov 28 02:00:59 mx y", "Nov 28 02:01:00 mx y", "Nov 28 02:00:60 leap"}},
		{"syslog, short day", []time.Time{ref}, []string{"Nov  8 02:00:19 mx a", "Nov  8 02:00:21 mx a", "Nov 8 02:00:21 mx a"}},
		{"syslog, line after the reference's year end", []time.Time{newYear}, []string{
			"Dec 31 23:59:58 mx a", "Dec 31 23:59:59 mx a", "Jan  1 00:00:01 mx b", "Jan  2 00:00:10 mx future", "Jan  2 00:00:40 mx future"}},
		{"syslog, the reference moves", []time.Time{ref, ref.Add(time.Hour), ref.Add(-48 * time.Hour), ref.AddDate(1, 0, 0)}, []string{
			"Nov 29 11:00:01 a", "Nov 29 11:00:02 a", "Nov 29 11:00:03 a", "Nov 29 11:00:04 a"}},
		{"syslog, the limit passes mid-minute", []time.Time{time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)}, []string{
			"Nov 28 12:00:10 a", "Nov 28 12:00:40 a", "Nov 28 12:00:20 a"}},
		{"zones of the reference", []time.Time{ref.In(berlin), ref.In(berlin), ref, ref}, []string{
			"Nov 28 02:00:19 a", "Nov 28 02:00:20 a", "Nov 28 02:00:21 a", "2026-11-28 02:00:21 a"}},
		{"DST ends in Berlin", []time.Time{time.Date(2026, 10, 26, 0, 0, 0, 0, berlin)}, []string{
			"Oct 25 02:30:00 a", "Oct 25 02:30:59 a", "Oct 25 03:00:00 a", "Oct 25 01:59:59 a"}},
		{"RFC 3339 with fractions and zones", []time.Time{ref}, []string{
			"2026-11-28T03:14:01.123456+01:00 mx a", "2026-11-28T03:14:02.5+01:00 mx a", "2026-11-28T03:14:02+01:00 mx a",
			"2026-11-28T03:14:02.5Z mx a", "2026-11-28T03:14:02.5+0100 mx a", "2026-11-28T03:14:03,25-05:30 a", "2026-11-28T03:14:03.999999999-05:30 a"}},
		{"Exim", []time.Time{ref}, []string{
			"2026-11-28 02:00:47 [123] x", "2026-11-28 02:00:48.123 [123] x", "2026-11-28 02:00:49 +0100 x", "2026-11-28 02:00:49 +0200 x", "2026-11-28 02:00:50 x"}},
		{"time of day", []time.Time{ref, ref, ref.Add(time.Hour), ref}, []string{
			"11:59:01 a", "11:59:02 a", "11:59:03 a", "12:59:59 a", "13:00:01 a", "13:00:02 a"}},
		{"one second, different tails", []time.Time{ref}, []string{
			"Nov 28 02:00:19 mx a", "Nov 28 02:00:19 mx b", "Nov 28 02:00:19  mx c", "Nov 28 02:00:19 +0100 x", "Nov 28 02:00:19 -x",
			"Nov 28 02:00:19", "Nov 28 02:00:19 ", "Nov 28 02:00:19 mx d", "2026-11-28 02:00:49 x", "2026-11-28 02:00:49 +0100 x",
			"2026-11-28 02:00:49 y", "2026-11-28 02:00:49.5 y", "2026-11-28 02:00:49 y"}},
		{"not timestamps", []time.Time{ref}, []string{
			"Nov 28 02:00:19 a", "Nov 28 02:00:1x a", "hello", "Nov 28 02:00:19", "Foo 28 02:00:19 a", "@400000004c91b044077a9e94 a", "Nov 28 25:00:19 a", "2026-02-30 02:00:19 a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Cache
			for i, l := range tt.lines {
				checkCache(t, &c, l, tt.ref[min(i, len(tt.ref)-1)])
			}
		})
	}
}

func TestCacheDoesNotAllocate(t *testing.T) {
	var c Cache
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	lines := [][]byte{[]byte("Nov 28 02:00:19 mx a"), []byte("Nov 28 02:00:20 mx a"), []byte("2026-11-28T03:14:02.5+01:00 mx a")}
	if n := testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			c.ParsePrefix(l, ref)
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzCache parses two lines with one cache against a reference and the
// same reference moved, and compares every result with ParsePrefix.
func FuzzCache(f *testing.F) {
	f.Add([]byte("Nov 28 02:00:19 mx a"), []byte("Nov 28 02:00:20 mx a"), int64(0), int64(0))
	f.Add([]byte("2026-11-28T03:14:01.1+01:00 a"), []byte("2026-11-28T03:14:59.123+01:00 a"), int64(0), int64(3600))
	f.Add([]byte("11:59:01 a"), []byte("11:59:02 a"), int64(0), int64(-86400))
	f.Add([]byte("Dec 31 23:59:58 a"), []byte("Dec 31 23:59:59 a"), int64(3e7), int64(86400*40))
	f.Fuzz(func(t *testing.T, a, b []byte, refOff, move int64) {
		ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC).Add(time.Duration(refOff%(1<<40)) * time.Second)
		ref2 := ref.Add(time.Duration(move%(1<<30)) * time.Second)
		var c Cache
		checkCache(t, &c, string(a), ref)
		checkCache(t, &c, string(b), ref)
		checkCache(t, &c, string(a), ref2)
		checkCache(t, &c, string(b), ref2)
		// A cache that has seen a's form only, through Len.
		var l Cache
		l.Len(a)
		checkCache(t, &l, string(b), ref)
		l.Len(b)
		checkCache(t, &l, string(b), ref2)
	})
}

func BenchmarkParsePrefix(b *testing.B) {
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.Local)
	lines := [][]byte{[]byte("Nov 28 02:00:19 mx a"), []byte("Nov 28 02:00:20 mx a")}
	b.Run("plain", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ParsePrefix(lines[i&1], ref)
		}
	})
	b.Run("cache", func(b *testing.B) {
		var c Cache
		for i := 0; i < b.N; i++ {
			c.ParsePrefix(lines[i&1], ref)
		}
	})
}
