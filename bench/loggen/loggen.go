// Package loggen writes realistic, deterministic mail logs for benchmarks:
// benign Postfix traffic (postscreen, smtpd, cleanup, qmgr, delivery) mixed
// with a botnet's attacks (pregreet, EHLO ylmf-pc, AUTH LOGIN guessing,
// relay attempts) from many addresses.
package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand"
	"net/netip"
	"time"
)

// Options shape a generated log.
type Options struct {
	Lines       int       // lines to write
	AttackShare float64   // share of lines written by attack sessions, 0..1
	Attackers   int       // distinct attacking addresses (IPv4 and IPv6)
	Seed        int64     // same seed, same log
	Start       time.Time // time of the first line
	RFC3339     bool      // RFC 3339 timestamps instead of classic syslog ones
}

// Postfix writes a Postfix log to w.
func Postfix(w io.Writer, o Options) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewSource(o.Seed))
	t := o.Start
	if t.IsZero() {
		t = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	}
	attacker := func() string {
		i := rng.Intn(max(o.Attackers, 1))
		if i%10 == 9 {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			return netip.AddrFrom16(b).String()
		}
		return netip.AddrFrom4([4]byte{byte(11 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)}).String()
	}
	benignHost := func() (string, string) {
		i := rng.Intn(5000)
		return fmt.Sprintf("mail%d.example.net", i), netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}).String()
	}
	qid := func() string {
		const a = "0123456789ABCDEFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
		b := make([]byte, 12)
		for i := range b {
			b[i] = a[rng.Intn(len(a))]
		}
		return string(b)
	}
	pid := func() int { return 1000 + rng.Intn(30000) }
	written := 0
	emit := func(prog, msg string) {
		if written >= o.Lines {
			return
		}
		t = t.Add(time.Duration(rng.Intn(20)) * time.Millisecond)
		if o.RFC3339 {
			bw.WriteString(t.Format("2006-01-02T15:04:05.000000-07:00"))
		} else {
			bw.WriteString(t.Format(time.Stamp))
		}
		bw.WriteString(" mx1 postfix/")
		bw.WriteString(prog)
		bw.WriteString(": ")
		bw.WriteString(msg)
		bw.WriteByte('\n')
		written++
	}
	attackLines := 0
	for written < o.Lines {
		if float64(attackLines) < o.AttackShare*float64(written+1) {
			before := written
			ip := attacker()
			p := pid()
			switch rng.Intn(6) {
			case 0:
				emit("postscreen[812]", fmt.Sprintf("CONNECT from [%s]:%d to [192.0.2.1]:25", ip, 1024+rng.Intn(60000)))
				emit("postscreen[812]", fmt.Sprintf("PREGREET 14 after 0.%02d from [%s]:%d: EHLO ylmf-pc\\r\\n", rng.Intn(99), ip, 1024+rng.Intn(60000)))
			case 1, 2:
				emit(fmt.Sprintf("submission/smtpd[%d]", p), fmt.Sprintf("warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", ip))
				emit(fmt.Sprintf("submission/smtpd[%d]", p), fmt.Sprintf("disconnect from unknown[%s] ehlo=1 auth=0/1 commands=1/2", ip))
			case 3:
				emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("NOQUEUE: reject: RCPT from unknown[%s]: 504 5.5.2 <ylmf-pc>: Helo command rejected: need fully-qualified hostname; from=<spam@example.org> to=<alice@example.com> proto=ESMTP helo=<ylmf-pc>", ip))
			case 4:
				emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <victim@example.org>: Relay access denied; from=<spam@example.org> to=<victim@example.org> proto=ESMTP helo=<ylmf-pc>", ip))
			case 5:
				emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("lost connection after AUTH from unknown[%s]", ip))
				emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("warning: unknown[%s]: SASL PLAIN authentication failed: authentication failure", ip))
			}
			attackLines += written - before
			continue
		}
		name, ip := benignHost()
		p, q := pid(), qid()
		port := 1024 + rng.Intn(60000)
		emit("postscreen[812]", fmt.Sprintf("CONNECT from [%s]:%d to [192.0.2.1]:25", ip, port))
		emit("postscreen[812]", fmt.Sprintf("PASS OLD [%s]:%d", ip, port))
		emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("connect from %s[%s]", name, ip))
		emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("%s: client=%s[%s]", q, name, ip))
		emit(fmt.Sprintf("cleanup[%d]", p+1), fmt.Sprintf("%s: message-id=<%d.%s@%s>", q, rng.Int63(), q, name))
		emit("qmgr[700]", fmt.Sprintf("%s: from=<news@%s>, size=%d, nrcpt=1 (queue active)", q, name, 1000+rng.Intn(90000)))
		emit(fmt.Sprintf("smtpd[%d]", p), fmt.Sprintf("disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7", name, ip))
		emit(fmt.Sprintf("lmtp[%d]", p+2), fmt.Sprintf("%s: to=<user%d@example.com>, relay=mx1[private/dovecot-lmtp], delay=0.%d, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <user@example.com> Saved)", q, rng.Intn(500), rng.Intn(9)))
		emit("qmgr[700]", fmt.Sprintf("%s: removed", q))
	}
	return bw.Flush()
}
