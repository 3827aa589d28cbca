package filter

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		line      string
		ok        bool
		tag, body string
	}{
		{"Nov 28 02:00:19 mx postfix/smtpd[123]: warning: x", true, "postfix/smtpd", "warning: x"},
		{"Nov 28 02:00:19 mx dovecot: imap-login: x", true, "dovecot", "imap-login: x"},
		{"Nov 28 02:00:19 postfix/smtpd[123]: x", true, "postfix/smtpd", "x"},
		{"2026-11-28T02:00:19+01:00 mx sshd-session[9]: Failed", true, "sshd-session", "Failed"},
		{"mx postfix/smtpd[1]: no timestamp", true, "postfix/smtpd", "no timestamp"},
		{"Nov 28 02:00:19 mx postfix/smtpd[]: x", false, "", ""},
		{"Nov 28 02:00:19 mx postfix/smtpd[12a]: x", false, "", ""},
		{"Nov 28 02:00:19 mx [12]: x", false, "", ""},
		{"Nov 28 02:00:19 mx postfix/smtpd[1] x", false, "", ""},
		{"Nov 28 02:00:19 mx postfix/smtpd[1]:", false, "", ""},
		{"Nov 28 02:00:19 mx", false, "", ""},
		{"Nov 28 02:00:19  mx postfix/smtpd[1]: x", true, "postfix/smtpd", "x"}, // blanks after the time are one
		{"]: x", false, "", ""},
		{"]:", false, "", ""},
		{"", false, "", ""},
	}
	for _, tt := range tests {
		lc := lineCtx{line: []byte(tt.line), ref: time.Now()}
		ok := lc.header()
		if ok != tt.ok {
			t.Errorf("%q: ok = %v, want %v", tt.line, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if tag, body := string(lc.tag()), tt.line[lc.bodyOff:]; tag != tt.tag || body != tt.body {
			t.Errorf("%q: tag %q body %q, want %q %q", tt.line, tag, body, tt.tag, tt.body)
		}
	}
}

// TestHeaderHostCache parses every pair of lines, the second with the host
// name the first left in a cache, and compares with a parse without one.
func TestHeaderHostCache(t *testing.T) {
	lines := []string{
		"Nov 28 02:00:19 mx postfix/smtpd[123]: warning: x",
		"Nov 28 02:00:19 mx1 postfix/smtpd[123]: warning: x",
		"Nov 28 02:00:19 mx: postfix/smtpd[123]: x",
		"Nov 28 02:00:19 mx[1]: x y z a b c d e f",
		"Nov 28 02:00:19 mx postfix/smtpd[1]: x",
		"Nov 28 02:00:19 mx  postfix/smtpd[1]: x",
		"Nov 28 02:00:19 mxpostfix/smtpd[1]: x y z",
		"Nov 28 02:00:19 mail.example.org dovecot: imap-login: x",
		"Nov 28 02:00:19 mail.example.org. dovecot: imap-login: x",
		"Nov 28 02:00:19 mail.example.orgdovecot: imap-login: x",
		"Nov 28 02:00:19 a-very-long-host-name.example.org sshd[9]: Failed password",
		"Nov 28 02:00:19 postfix/smtpd[123]: x y z a b c d e f",
		"2026-11-28T02:00:19+01:00 mx sshd-session[9]: Failed",
		"mx postfix/smtpd[1]: no timestamp at all",
		"Nov 28 02:00:19 mx",
		"Nov 28 02:00:19 mx ",
		"Nov 28 02:00:19 mx x",
	}
	parse := func(line string, h *hostCache) (lineCtx, bool) {
		lc := lineCtx{line: []byte(line), ref: time.Now(), host: h}
		return lc, lc.header()
	}
	for _, first := range lines {
		for _, second := range lines {
			var h hostCache
			parse(first, &h)
			got, ok := parse(second, &h)
			want, wok := parse(second, nil)
			if ok != wok || ok && (got.tagOff != want.tagOff || got.tagEnd != want.tagEnd || got.bodyOff != want.bodyOff) {
				t.Errorf("%q after %q: %v %d %d %d, want %v %d %d %d", second, first,
					ok, got.tagOff, got.tagEnd, got.bodyOff, wok, want.tagOff, want.tagEnd, want.bodyOff)
			}
		}
	}
}

// TestHeaderTagCache parses every pair of lines, the second with the tag
// the first left in a hdrCache, and compares with a parse without one.
func TestHeaderTagCache(t *testing.T) {
	pad := " " + strings.Repeat("x", 40) // lookups need 32 bytes after the host
	lines := []string{
		"Nov 28 02:00:19 mx postfix/smtpd[123]: warning: x",
		"Nov 28 02:00:19 mx postfix/smtpd[9]: warning: x",
		"Nov 28 02:00:19 mx postfix/smtpd[]: x",
		"Nov 28 02:00:19 mx postfix/smtpd[12a]: x",
		"Nov 28 02:00:19 mx postfix/smtpd[12]:x y",
		"Nov 28 02:00:19 mx postfix/smtpd[12] x",
		"Nov 28 02:00:19 mx postfix/smtpd[12]:",
		"Nov 28 02:00:19 mx postfix/smtpd: x",
		"Nov 28 02:00:19 mx postfix/smtpd:x y",
		"Nov 28 02:00:19 mx postfix/smtpdx[1]: x",
		"Nov 28 02:00:19 mx postfix/smtp[1]: x",
		"Nov 28 02:00:19 mx postfix/submission/smtpd[77]: x",
		"Nov 28 02:00:19 mx a[1][23]: x",
		"Nov 28 02:00:19 mx a[1][23]x: x",
		"Nov 28 02:00:19 mx a:b[4]: x",
		"Nov 28 02:00:19 mx dovecot: imap-login: x",
		"Nov 28 02:00:19 mx dovecot]: x",
		"Nov 28 02:00:19 mx dovecot:: x",
		"Nov 28 02:00:19 mx a-tag-that-is-longer-than-thirty-two-bytes[1]: x",
		"Nov 28 02:00:19 mx a-tag-of-exactly-thirty-one-byte[1]: x",
		"Nov 28 02:00:19 mx a-tag-of-exactly-thirty-two-bytes[1]: x",
		"Nov 28 02:00:19 mx sshd[9]: Failed",
		"Nov 28 02:00:19 mx sshd[9]: ",
		"Nov 28 02:00:19 mx sshd[9]:",
		"Nov 28 02:00:19 mx sshd[9]",
		"Nov 28 02:00:19 postfix/smtpd[123]: x",
	}
	var all []string
	for _, l := range lines {
		all = append(all, l, l+pad, strings.Replace(l, ": x", ":"+pad, 1))
	}
	parse := func(line string, c *hdrCache) lineCtx {
		lc := lineCtx{line: []byte(line), ref: time.Now(), hdrs: c}
		if lc.header() && lc.hdrMiss {
			// As watchedBy does with the tag's watchers.
			c.add(lc.line[lc.tagOff:], lc.tagEnd-lc.tagOff, lc.bodyOff-lc.tagOff, uint64(len(lc.tag())))
		}
		return lc
	}
	hits := 0
	for _, first := range all {
		for _, second := range all {
			var c hdrCache
			parse(first, &c)
			got := parse(second, &c)
			want := parse(second, nil)
			if got.hdrOK && !got.hdrMiss {
				hits++
			}
			if got.hdrOK != want.hdrOK || got.hdrOK && (got.tagOff != want.tagOff || got.tagEnd != want.tagEnd || got.bodyOff != want.bodyOff) {
				t.Errorf("%q after %q: %v %d %d %d, want %v %d %d %d", second, first,
					got.hdrOK, got.tagOff, got.tagEnd, got.bodyOff, want.hdrOK, want.tagOff, want.tagEnd, want.bodyOff)
			}
			if got.hdrOK && got.maskOK && got.watched != uint64(len(got.tag())) {
				t.Errorf("%q after %q: watchers %d, want those of tag %q", second, first, got.watched, got.tag())
			}
		}
	}
	if hits < 50 {
		t.Errorf("only %d lines found in the cache", hits)
	}
	// All the lines through one cache, in several orders: more tags than
	// it holds, of keys from 5 to 32 bytes, so that entries are replaced
	// and the shortest key, which buckets them, changes.
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var c hdrCache
		for _, line := range all {
			got := parse(line, &c)
			want := parse(line, nil)
			if got.hdrOK != want.hdrOK || got.hdrOK && (got.tagOff != want.tagOff || got.tagEnd != want.tagEnd || got.bodyOff != want.bodyOff) {
				t.Fatalf("round %d: %q: %v %d %d %d, want %v %d %d %d", round, line,
					got.hdrOK, got.tagOff, got.tagEnd, got.bodyOff, want.hdrOK, want.tagOff, want.tagEnd, want.bodyOff)
			}
			if got.hdrOK && got.maskOK && got.watched != uint64(len(got.tag())) {
				t.Fatalf("round %d: %q: watchers %d, want those of tag %q", round, line, got.watched, got.tag())
			}
			// A header the cache keeps (see add) is found right after.
			pid := got.hdrOK && got.line[got.tagEnd] == '['
			kept := got.hdrOK && len(got.line)-got.tagOff >= hdrKeyLen &&
				(pid && got.tagEnd-got.tagOff+1 <= hdrKeyLen || !pid && got.bodyOff == got.tagEnd+2 && got.tagEnd-got.tagOff+2 <= hdrKeyLen)
			if again := parse(line, &c); kept && again.hdrMiss {
				t.Fatalf("round %d: %q: not found in the cache right after it was parsed", round, line)
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	}
}

// TestCandidates checks the rules a line's literals select.
func TestCandidates(t *testing.T) {
	rules := []*rule{{lits: []int32{0}}, {lits: []int32{1, 2}}, {lits: []int32{2}}, {lits: []int32{70}}}
	f := &Filter{rules: rules, litRules: litRules(rules, 71)}
	tests := []struct {
		found []int32
		want  uint64
	}{
		{nil, 0},
		{[]int32{0}, 0b0001},
		{[]int32{1}, 0b0010},
		{[]int32{2}, 0b0110},
		{[]int32{0, 2}, 0b0111},
		{[]int32{3}, 0},
		{[]int32{70}, 0b1000},
		{[]int32{0, 1, 2, 70}, 0b1111},
	}
	for _, tt := range tests {
		var found litset
		for _, id := range tt.found {
			found.add(id)
		}
		if got := f.candidates(&found); got != tt.want {
			t.Errorf("found %v: candidates %04b, want %04b", tt.found, got, tt.want)
		}
	}
	many := make([]*rule, 65)
	for i := range many {
		many[i] = &rule{}
	}
	if litRules(many, 1) != nil {
		t.Error("litRules of 65 rules is not nil")
	}
}

// TestSkipDigits holds skipDigits to a byte-by-byte loop on every byte
// value before, among and after runs of digits of every length up to 20.
func TestSkipDigits(t *testing.T) {
	slow := func(b []byte, i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	for n := 0; n <= 20; n++ {
		for c := 0; c < 256; c++ {
			for _, pad := range []int{0, 1, 9} {
				b := []byte("x[" + strings.Repeat("7", n))
				b = append(b, byte(c))
				b = append(b, strings.Repeat("]", pad)...)
				if got, want := skipDigits(b, 2), slow(b, 2); got != want {
					t.Fatalf("skipDigits(%q, 2) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
