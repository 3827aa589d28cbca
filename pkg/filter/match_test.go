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
