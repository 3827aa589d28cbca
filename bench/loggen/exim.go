package loggen

import (
	"fmt"
	"io"
	"time"
)

// eximTLS is the X= field of Debian's exim4 (GnuTLS) for a TLS 1.3 session.
const eximTLS = "X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256"

// Exim writes an Exim main log to w, as Debian's exim4 4.96 writes
// /var/log/exim4/mainlog with its default log_selector (Exim's own
// timestamps, 4.96 message ids, no ports; with PID, +pid):
//
//	2026-11-28 00:00:01 1tGm4x-000Gxa-0A <= news@mail7.example.net H=mail7.example.net [203.0.0.7] P=esmtps X=... CV=no S=4120 id=...
//	2026-11-28 00:00:01 1tGm4x-000Gxa-0A => user12 <user12@example.com> R=local_user T=mail_spool
//	2026-11-28 00:00:01 1tGm4x-000Gxa-0A Completed
//
// Benign traffic is mail from other servers (with their reverse DNS name),
// mail that customers submit after SMTP AUTH (an auth_success for the
// filter; their laptops have no reverse DNS), delivered on to remote
// servers, and the queue runner every 30 minutes. Attacks are the lines
// filters/exim.toml takes: authenticator failures, pregreet ("input sent
// without waiting for greeting"), pipelining errors, SMTP protocol errors,
// calls dropped for too many errors, EHLO syntax rejections, and RCPT
// rejections for relaying, unknown users and block lists; half of the
// attack sessions start with "no host name found for IP address", which the
// filter leaves alone.
func Exim(w io.Writer, o Options) error {
	g, err := newGen(w, o)
	if err != nil {
		return err
	}
	rng, bw := g.rng, g.bw
	var idBuf []byte
	emit := func(pid int, msg string) {
		if !g.step() {
			return
		}
		bw.WriteString(g.t.Format(time.DateTime))
		if o.PID {
			fmt.Fprintf(bw, " [%d]", pid)
		}
		bw.WriteByte(' ')
		bw.WriteString(msg)
		bw.WriteByte('\n')
		g.written++
	}
	// msgID is an Exim 4.96 message id: time, pid and fraction of a
	// second in base 62.
	msgID := func(pid int) string {
		idBuf = base62(idBuf[:0], g.t.Unix(), 6)
		idBuf = append(idBuf, '-')
		idBuf = base62(idBuf, int64(pid), 6)
		idBuf = append(idBuf, '-')
		idBuf = base62(idBuf, int64(g.t.Nanosecond()/500000), 2)
		return string(idBuf)
	}
	pid := func() int { return 1000 + rng.Intn(60000) }
	helos := []string{"ylmf-pc", "User", "WIN-CLJ1B0GQ6JP", "USER-PC", "ylmf-pc"}
	users := []string{"admin", "info", "test", "sales", "webmaster", "office@example.com", "postmaster@example.com"}
	auths := []string{"plain_server", "login_server"}
	rcpts := []string{"info", "office", "billing", "hr", "ceo"}

	attack := func() {
		a := g.attacker()
		ip := a.String()
		p := pid()
		helo := helos[rng.Intn(len(helos))]
		if rng.Intn(2) == 0 {
			emit(p, "no host name found for IP address "+ip)
		}
		switch rng.Intn(10) {
		case 0, 1: // password guessing, a few tries per connection
			for n := 1 + rng.Intn(3); n > 0; n-- {
				emit(p, fmt.Sprintf("%s authenticator failed for (%s) [%s]: 535 Incorrect authentication data (set_id=%s)",
					auths[rng.Intn(len(auths))], helo, ip, users[rng.Intn(len(users))]))
			}
		case 2:
			emit(p, fmt.Sprintf(`SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[%s] input="EHLO %s\r\n"`, ip, helo))
		case 3:
			emit(p, fmt.Sprintf("H=(%s) [%s] F=<spam%d@example.org> rejected RCPT <victim%d@example.org>: relay not permitted", helo, ip, rng.Intn(1000), rng.Intn(1000)))
		case 4:
			emit(p, fmt.Sprintf("rejected EHLO from [%s]: syntactically invalid argument(s): ylmf_pc", ip))
		case 5:
			emit(p, fmt.Sprintf("H=(%s) [%s] F=<bounce%d@example.org> rejected RCPT <%s@example.com>: Unrouteable address", helo, ip, rng.Intn(1000), rcpts[rng.Intn(len(rcpts))]))
		case 6:
			emit(p, fmt.Sprintf(`SMTP protocol error in "AUTH LOGIN" H=(%s) [%s] AUTH command used when not advertised`, helo, ip))
		case 7:
			if rng.Intn(2) == 0 {
				emit(p, fmt.Sprintf(`SMTP call from (%s) [%s] dropped: too many syntax or protocol errors (last command was "AUTH LOGIN", C=EHLO,AUTH)`, helo, ip))
			} else {
				emit(p, fmt.Sprintf(`SMTP call from [%s] dropped: too many unrecognized commands (last was "\033%%-12345X")`, ip))
			}
		case 8:
			emit(p, fmt.Sprintf("H=(%s) [%s] F=<offer%d@example.org> rejected RCPT <%s@example.com>: rejected because %s is in a black list at zen.spamhaus.org", helo, ip, rng.Intn(1000), rcpts[rng.Intn(len(rcpts))], ip))
		case 9:
			emit(p, fmt.Sprintf(`SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected "EHLO %s" H=[%s] next input="AUTH LOGIN\r\n"`, helo, ip))
		}
	}

	nextQueueRun := g.t.Truncate(30 * time.Minute).Add(30 * time.Minute)
	benign := func() {
		if !g.t.Before(nextQueueRun) {
			qp := pid()
			emit(qp, fmt.Sprintf("Start queue run: pid=%d", qp))
			emit(qp, fmt.Sprintf("End queue run: pid=%d", qp))
			nextQueueRun = g.t.Truncate(30 * time.Minute).Add(30 * time.Minute)
			return
		}
		name, addr := g.benignPeer(true)
		ip := addr.String()
		p := pid()
		size := 1000 + rng.Intn(90000)
		if rng.Intn(4) == 0 {
			// A customer sends mail out after SMTP AUTH.
			u := rng.Intn(500)
			emit(p, "no host name found for IP address "+ip)
			id := msgID(p)
			emit(p, fmt.Sprintf("%s <= user%d@example.com H=(laptop-%d) [%s] P=esmtpsa %s CV=no A=plain_server:user%d@example.com S=%d id=%d.%d@example.com",
				id, u, u, ip, eximTLS, u, size, rng.Int63(), u))
			mx := 1 + rng.Intn(200)
			emit(p+1, fmt.Sprintf(`%s => friend%d@example.org R=dnslookup T=remote_smtp H=mx%d.example.org [198.51.100.%d] %s CV=yes C="250 2.0.0 Ok: queued as %X"`,
				id, rng.Intn(1000), mx, mx, eximTLS, rng.Int63()&0xffffffffff))
			emit(p+1, id+" Completed")
			return
		}
		id := msgID(p)
		emit(p, fmt.Sprintf("%s <= news@%s H=%s [%s] P=esmtps %s CV=no S=%d id=%d.%s@%s", id, name, name, ip, eximTLS, size, rng.Int63(), id, name))
		u := rng.Intn(500)
		emit(p+1, fmt.Sprintf("%s => user%d <user%d@example.com> R=local_user T=mail_spool", id, u, u))
		emit(p+1, id+" Completed")
	}
	return g.run(attack, benign)
}
