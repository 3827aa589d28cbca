package logtime

import (
	"testing"
	"time"
)

func TestParsePrefix(t *testing.T) {
	utc := time.UTC
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, utc)
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		line string
		ref  time.Time
		want time.Time
		rest string // what follows the timestamp and its blanks
		ok   bool
	}{
		{"syslog", "Nov 28 02:00:19 mx postfix", ref, time.Date(2026, 11, 28, 2, 0, 19, 0, utc), "mx postfix", true},
		{"syslog padded day", "Nov  8 02:00:19 mx", ref, time.Date(2026, 11, 8, 2, 0, 19, 0, utc), "mx", true},
		{"syslog unpadded day", "Mar 7 02:09:33 server", ref, time.Date(2026, 3, 7, 2, 9, 33, 0, utc), "server", true},
		{"syslog a day ahead is this year", "Nov 29 11:00:00 x", ref, time.Date(2026, 11, 29, 11, 0, 0, 0, utc), "x", true},
		{"syslog beyond a day ahead is last year", "Dec 25 02:35:54 x", ref, time.Date(2025, 12, 25, 2, 35, 54, 0, utc), "x", true},
		{"syslog new year", "Dec 31 23:59:59 x", time.Date(2027, 1, 1, 0, 0, 5, 0, utc), time.Date(2026, 12, 31, 23, 59, 59, 0, utc), "x", true},
		{"syslog Feb 29 goes to a leap year", "Feb 29 10:00:00 x", ref, time.Date(2024, 2, 29, 10, 0, 0, 0, utc), "x", true},
		{"syslog keeps the reference's zone", "Nov 28 02:00:19 x", ref.In(berlin), time.Date(2026, 11, 28, 2, 0, 19, 0, berlin), "x", true},
		{"syslog fraction", "Nov 28 02:00:19.250 x", ref, time.Date(2026, 11, 28, 2, 0, 19, 250e6, utc), "x", true},
		{"rfc3339 high precision", "2026-11-28T03:14:01.123456+01:00 mx", ref, time.Date(2026, 11, 28, 2, 14, 1, 123456000, utc), "mx", true},
		{"rfc3339 Z", "2026-11-28T03:14:01Z mx", ref, time.Date(2026, 11, 28, 3, 14, 1, 0, utc), "mx", true},
		{"journalctl short-iso", "2026-11-28T03:14:01+0100 mx", ref, time.Date(2026, 11, 28, 2, 14, 1, 0, utc), "mx", true},
		{"rfc3339 negative offset", "2026-11-28T03:14:01-05:30 mx", ref, time.Date(2026, 11, 28, 8, 44, 1, 0, utc), "mx", true},
		{"exim", "2026-11-28 02:00:47 1abc-000123-AB <= x", ref, time.Date(2026, 11, 28, 2, 0, 47, 0, utc), "1abc-000123-AB <= x", true},
		{"exim millisec", "2026-11-28 02:00:47.123 [42] x", ref, time.Date(2026, 11, 28, 2, 0, 47, 123e6, utc), "[42] x", true},
		{"exim log_timezone", "2026-11-28 02:00:47 +0100 x", ref, time.Date(2026, 11, 28, 1, 0, 47, 0, utc), "x", true},
		{"exim: a number after the time is not a zone", "2026-11-28 02:00:47 +01000 x", ref, time.Date(2026, 11, 28, 2, 0, 47, 0, utc), "+01000 x", true},
		{"time of day", "16:14:01 Connected", ref, time.Date(2026, 11, 28, 16, 14, 1, 0, utc).AddDate(0, 0, -1), "Connected", true},
		{"time of day earlier today", "11:14:01 Connected", ref, time.Date(2026, 11, 28, 11, 14, 1, 0, utc), "Connected", true},
		{"tai64n", "@400000004c91b044077a9e94 imap-login: x", ref, time.Date(2010, 9, 16, 5, 50, 50, 125476500, utc), "imap-login: x", true},
		{"tai64n too short", "@400000004c91b044077a9e9 x", ref, time.Time{}, "", false},
		{"tai64n not hex", "@400000004c91b044077a9eg4 x", ref, time.Time{}, "", false},
		{"bad month", "Foo 28 02:00:19 x", ref, time.Time{}, "", false},
		{"bad day", "Nov 32 02:00:19 x", ref, time.Time{}, "", false},
		{"bad hour", "Nov 28 24:00:19 x", ref, time.Time{}, "", false},
		{"bad minute", "2026-11-28T03:60:01Z x", ref, time.Time{}, "", false},
		{"bad date", "2026-02-30T03:00:01Z x", ref, time.Time{}, "", false},
		{"too many digits", "2026-11-28T03:14:011 x", ref, time.Time{}, "", false},
		{"an address is no time", "81.198.214.48   [0968] 16:14:01 x", ref, time.Time{}, "", false},
		{"empty", "", ref, time.Time{}, "", false},
		{"short", "Nov 28", ref, time.Time{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, ok := ParsePrefix([]byte(tt.line), tt.ref)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if !got.Equal(tt.want) {
				t.Errorf("time = %v, want %v", got, tt.want)
			}
			if rest := tt.line[n:]; rest != tt.rest {
				t.Errorf("rest = %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	if _, ok := Parse([]byte("16:14:01 x"), ref); ok {
		t.Error("Parse accepted trailing text")
	}
	got, ok := Parse([]byte("09:30:00"), ref)
	if !ok || !got.Equal(time.Date(2026, 11, 28, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("Parse(09:30:00) = %v, %v", got, ok)
	}
}

func TestParsePrefixDoesNotAllocate(t *testing.T) {
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	lines := [][]byte{
		[]byte("Nov 28 02:00:19 mx postfix/smtpd[1]: x"),
		[]byte("2026-11-28T03:14:01.123456+01:00 mx x"),
		[]byte("2026-11-28 02:00:47 +0100 x"),
	}
	for _, l := range lines {
		if n := testing.AllocsPerRun(100, func() { ParsePrefix(l, ref) }); n != 0 {
			t.Errorf("%q: %v allocations", l, n)
		}
	}
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"Nov 28 02:00:19 x", "2026-11-28T03:14:01.123456+01:00 x", "2026-11-28 02:00:47 +0100 x", "16:14:01 x", "Feb 29 00:00:00"} {
		f.Add(s)
	}
	ref := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, n, ok := ParsePrefix([]byte(s), ref)
		if !ok {
			if n != 0 || !got.IsZero() {
				t.Fatalf("failed parse returned %v, %d", got, n)
			}
			return
		}
		if n > len(s) || n < 8 {
			t.Fatalf("consumed %d of %d bytes", n, len(s))
		}
		if got.After(ref.Add(Slack)) && s[0] >= 'A' && s[0] <= 'Z' {
			t.Fatalf("syslog time %v after the reference", got)
		}
	})
}
