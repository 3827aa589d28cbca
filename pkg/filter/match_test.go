package filter

import (
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
