package loggen

import (
	"fmt"
	"io"
	"time"
)

// Postfix writes a Postfix log to w: benign sessions (postscreen CONNECT and
// PASS, smtpd connect/client/disconnect, cleanup, qmgr, lmtp delivery) and
// attacks (pregreet, EHLO ylmf-pc, SASL LOGIN and PLAIN guessing, relay
// attempts), through syslog with host name mx1.
//
// With V6Share, Sweep and PID left zero the log is the same, byte for byte,
// as the first versions of this package wrote for the same options.
func Postfix(w io.Writer, o Options) error {
	g, err := newGen(w, o)
	if err != nil {
		return err
	}
	rng, bw := g.rng, g.bw
	qid := func() string {
		const a = "0123456789ABCDEFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
		b := make([]byte, 12)
		for i := range b {
			b[i] = a[rng.Intn(len(a))]
		}
		return string(b)
	}
	pid := func() int { return 1000 + rng.Intn(30000) }
	emit := func(prog, msg string) {
		if !g.step() {
			return
		}
		if o.RFC3339 {
			bw.WriteString(g.t.Format("2006-01-02T15:04:05.000000-07:00"))
		} else {
			bw.WriteString(g.t.Format(time.Stamp))
		}
		bw.WriteString(" mx1 postfix/")
		bw.WriteString(prog)
		bw.WriteString(": ")
		bw.WriteString(msg)
		bw.WriteByte('\n')
		g.written++
	}
	attack := func() {
		ip := g.attacker().String()
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
	}
	benign := func() {
		name, addr := g.benignPeer(false)
		ip := addr.String()
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
	return g.run(attack, benign)
}
