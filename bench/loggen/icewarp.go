package loggen

import (
	"encoding/base64"
	"fmt"
	"io"
	"time"
)

// IceWarp writes an IceWarp Server SMTP log (logs/smtp/*.log, "extended"
// level) to w, in the format filters/icewarp.toml documents: the client's
// address padded to 15 characters, the session id in hex, the time of day,
// then "<<< " for what the client sent, ">>> " for the server's replies, or
// IceWarp's own text; IceWarp's own tasks write "SYSTEM [0000]":
//
//	203.0.0.12      [0001] 00:00:01 <<< EHLO mail12.example.net
//	11.0.3.232      [0002] 00:00:01 >>> 535 5.7.8 Authentication credentials invalid
//
// The lines carry no date: name the file sYYYYMMDD.log, as IceWarp does, or
// give the engine the day as the reference time. A log longer than a day
// of traffic (about 8 million lines) runs past midnight and its times of day
// start again.
//
// Benign sessions are mail from other servers (EHLO with their name) and
// customers who log in (AUTH LOGIN, 235; an auth_success for the filter) to
// send mail. Attacks are AUTH LOGIN guessing after EHLO with a bare PC name
// (ylmf-pc), HELO without a name, cancelled and failed logins, HTTP probes
// (500 Command unrecognized) and senders refused by policy (501 5.7.1).
func IceWarp(w io.Writer, o Options) error {
	g, err := newGen(w, o)
	if err != nil {
		return err
	}
	rng, bw := g.rng, g.bw
	sid := 0
	who := ""
	emit := func(msg string) {
		if !g.step() {
			return
		}
		if who == "SYSTEM" {
			bw.WriteString("SYSTEM [0000] ")
		} else {
			fmt.Fprintf(bw, "%-15s [%04X] ", who, sid)
		}
		bw.WriteString(g.t.Format(time.TimeOnly))
		bw.WriteByte(' ')
		bw.WriteString(msg)
		bw.WriteByte('\n')
		g.written++
	}
	open := func(client string, port int) {
		sid = (sid + 1) & 0xffff
		who = client
		emit(fmt.Sprintf("Connected, local IP=192.0.2.1:%d", port))
		emit(">>> 220 mail.example.com ESMTP IceWarp 13.0.3; " + g.t.Format(time.RFC1123Z))
	}
	hello := func(helo, ip string) {
		emit("<<< EHLO " + helo)
		emit(fmt.Sprintf(">>> 250-mail.example.com Hello %s [%s], pleased to meet you.", helo, ip))
	}
	b64 := base64.StdEncoding.EncodeToString
	login := func(user, password string) {
		emit("<<< AUTH LOGIN")
		emit(">>> 334 VXNlcm5hbWU6")
		emit("<<< " + b64([]byte(user)))
		emit(">>> 334 UGFzc3dvcmQ6")
		emit("<<< " + b64([]byte(password)))
	}
	mail := func(from, to string, size int) {
		emit(fmt.Sprintf("<<< MAIL FROM:<%s> SIZE=%d", from, size))
		emit(fmt.Sprintf(">>> 250 2.1.0 <%s>... Sender ok", from))
		emit(fmt.Sprintf("<<< RCPT TO:<%s>", to))
		emit(fmt.Sprintf(">>> 250 2.1.5 <%s>... Recipient ok", to))
		emit(fmt.Sprintf("*** <%s> <%s> 1 %d 00:00:0%d OK %06X", from, to, size, 1+rng.Intn(5), rng.Intn(1<<24)))
		emit("Disconnected")
	}
	incomplete := func() {
		emit("*** <> <> 0 0 00:00:00 INCOMPLETE-SESSION ")
		emit("Disconnected")
	}
	helos := []string{"ylmf-pc", "USER-PC", "WIN-CLJ1B0GQ6JP", "ylmf-pc"}
	users := []string{"admin", "info", "test", "sales", "office@example.com", "postmaster@example.com"}
	passwords := []string{"123456", "password", "admin123", "qwerty", "P@ssw0rd"}

	attack := func() {
		a := g.attacker()
		ip := a.String()
		switch rng.Intn(6) {
		case 0, 1: // password guessing after EHLO with a bare name
			open(ip, 25+562*rng.Intn(2))
			hello(helos[rng.Intn(len(helos))], ip)
			login(users[rng.Intn(len(users))], passwords[rng.Intn(len(passwords))])
			emit(">>> 535 5.7.8 Authentication credentials invalid")
			incomplete()
		case 2:
			open(ip, 25)
			emit("<<< HELO")
			emit(">>> 501 5.5.1 HELO/EHLO requires domain address")
			incomplete()
		case 3:
			open(ip, 587)
			if a.Is6() {
				hello("[IPv6:"+ip+"]", ip)
			} else {
				hello("["+ip+"]", ip)
			}
			emit("<<< AUTH LOGIN")
			emit(">>> 334 VXNlcm5hbWU6")
			if rng.Intn(2) == 0 {
				emit("<<< *")
				emit(">>> 501 5.0.0 Authentication canceled")
			} else {
				emit("<<< " + b64([]byte(users[rng.Intn(len(users))])))
				emit(">>> 501 5.7.0 Authentication failed")
			}
			incomplete()
		case 4: // a web scanner on the SMTP port
			open(ip, 25)
			emit("<<< GET / HTTP/1.1")
			emit(">>> 500 5.5.1 Command unrecognized")
			emit("<<< Host: mail.example.com")
			emit(">>> 500 5.5.1 Command unrecognized")
			incomplete()
		case 5: // a forged local sender from a host without reverse DNS
			open(ip, 25)
			hello(fmt.Sprintf("mta%d.example.biz", rng.Intn(1000)), ip)
			emit("<<< MAIL FROM:<ceo@example.com>")
			emit(">>> 501 5.7.1 Permission denied")
			incomplete()
		}
	}

	nextSystem := g.t.Truncate(time.Hour).Add(time.Hour)
	benign := func() {
		if !g.t.Before(nextSystem) {
			who = "SYSTEM"
			emit("Forwarded mails older than 20 days from 'sales@example.com' to 'archive@example.org'")
			nextSystem = g.t.Truncate(time.Hour).Add(time.Hour)
			return
		}
		name, addr := g.benignPeer(true)
		ip := addr.String()
		size := 1000 + rng.Intn(90000)
		u := rng.Intn(500)
		if rng.Intn(4) == 0 {
			// A customer sends mail out after SMTP AUTH.
			open(ip, 587)
			hello(fmt.Sprintf("[192.168.%d.%d]", rng.Intn(10), 2+rng.Intn(250)), ip)
			user := fmt.Sprintf("user%d@example.com", u)
			login(user, fmt.Sprintf("s3cret-%d", u))
			emit(">>> 235 2.7.0 Authentication successful")
			mail(user, fmt.Sprintf("friend%d@example.org", rng.Intn(1000)), size)
			return
		}
		open(ip, 25)
		hello(name, ip)
		mail("news@"+name, fmt.Sprintf("user%d@example.com", u), size)
	}
	return g.run(attack, benign)
}
